"""The model call serving runs: ``model(inputs, training=False)`` as compiled TensorFlow functions.

Never ``model.predict``, which builds a dataset and a progress loop on every call (49 ms for one
row), nor a plain ``tf.function`` call with one tensor per column: converting each column to a
tensor costs about 20 us, which at one row is most of the call. The function takes one matrix per
dtype (all float columns in one, all string columns in another) and slices the columns out inside
the graph: 0.38 ms instead of 0.85 ms for one row of wine's 13 columns (measured here). Inputs the
model does not take (an all-empty column) are left out.

The model is also compiled with XLA, which fuses the per-column preprocessing and the layers into
a few kernels: one row of breast_cancer's 30 columns took 0.24 ms instead of 0.54 ms, 1,000 rows
1.0 ms instead of 3.0 ms (measured here, 2026-12-02). XLA compiles once per batch shape (about
0.25 s each), so batches are padded to the next power of two (at most 15 shapes up to
``MAX_CALL_ROWS``); a shape not compiled yet is answered by the plain function while a background
thread compiles it, so no request waits for a compilation (nor does loading: the one-row shape
starts compiling when the model loads). Strings cannot go through XLA, so a model with
categorical columns is served as its ``indexed_model``: the same layers and weights, fed each
category's index (looked up here, in NumPy, as its ``StringLookup`` would) where the lookup was,
once it answered as the model itself on every known category and an unknown one. A model this
cannot be done for, or that XLA fails to compile, keeps the plain function on its own inputs.

A process that exits while a compilation runs waits for it (``_wait_for_compilations``, at most
``EXIT_WAIT_S``): the compiling thread is a daemon, so Python would not wait, and C++ exit handlers
tearing LLVM down under a running compilation abort the process with ``LLVM ERROR: Cannot select``
(seen once here, 2026-12-04, as a benchmark's job process exited, the dump's types already garbage).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MAX_CALL_ROWS = 16_384  # larger inputs go through the model in slices of this many rows
EXIT_WAIT_S = 30.0  # the longest an exiting process waits for the compilations still running (each 0.25-1 s)

_compiling_threads: set[threading.Thread] = set()
_threads_lock = threading.Lock()
_exiting = threading.Event()


def _start_compiling(target: Callable[[int], None], size: int) -> bool:
    """``target(size)`` on a daemon thread the process waits for when it exits; False once it is exiting."""
    def run() -> None:
        try:
            target(size)
        finally:
            with _threads_lock:
                _compiling_threads.discard(thread)

    thread = threading.Thread(target=run, name=f"xla-compile-{size}", daemon=True)
    with _threads_lock:
        if _exiting.is_set():
            return False
        _compiling_threads.add(thread)
    try:
        thread.start()
    except RuntimeError:  # no thread to be had: the plain function serves, as when exiting
        with _threads_lock:
            _compiling_threads.discard(thread)
        return False
    return True


@atexit.register
def _wait_for_compilations() -> None:
    """At exit: no new compilation starts, and the running ones end before the process does."""
    _exiting.set()
    with _threads_lock:
        running = list(_compiling_threads)
    deadline = time.monotonic() + EXIT_WAIT_S
    for thread in running:
        thread.join(max(0.0, deadline - time.monotonic()))


def flat_caller(concrete: Any) -> Callable[[list[Any]], Any]:
    """Call ``concrete`` (a TensorFlow ``ConcreteFunction``) with its flat list of tensors: its private
    ``_call_flat`` skips binding the arguments to the signature again, about 0.1 ms of a 0.3 ms one-row
    call (measured here, TensorFlow 2.21). If a TensorFlow upgrade removes it, the public call is used
    (``tests/unit/test_serving.py`` pins which one runs)."""
    call_flat = getattr(concrete, "_call_flat", None)
    captured = getattr(concrete, "captured_inputs", None)
    if call_flat is None or captured is None:
        return lambda tensors: concrete(*tensors)
    return lambda tensors: call_flat(tensors, captured)


def lookup_tables(model: Any, string_keys: set[str]) -> dict[str, list[str]] | None:
    """Per string input, the vocabulary of the ``StringLookup`` layers fed by it (index 0: unknown),
    for the models ``automl.preprocessing.layers.build_inputs`` builds (a lookup named ``<input>_lookup``,
    one unknown index, no mask; an ensemble's members agreeing); None for any other model."""
    import keras

    from automl.hypermodels.ensemble import all_layers

    found: dict[str, list[str]] = {}
    for layer in all_layers(model):
        if not isinstance(layer, keras.layers.StringLookup):
            continue
        key = layer.name.removesuffix("_lookup")
        config = layer.get_config()
        if (key not in string_keys or config.get("num_oov_indices") != 1 or config.get("mask_token") is not None
                or config.get("invert") or layer.output_mode not in ("one_hot", "int")):
            return None
        vocabulary = [str(token) for token in layer.get_vocabulary()]
        if found.setdefault(key, vocabulary) != vocabulary:
            return None
    return found if set(found) == string_keys else None


def indexed_model(model: Any) -> Any:
    """``model`` taking int32 category indices where it takes strings: each ``StringLookup`` becomes
    the one-hot (or index) it would output; every other layer, and so every weight, is shared."""
    import keras

    strings = {key for key, tensor in model.input.items() if tensor.dtype == "string"}
    inputs = {key: keras.Input((1,), dtype="int32" if key in strings else tensor.dtype, name=key)
              for key, tensor in model.input.items()}

    def swap(layer: Any) -> Any:
        if isinstance(layer, keras.layers.StringLookup):
            if layer.output_mode == "one_hot":
                return keras.layers.CategoryEncoding(num_tokens=layer.vocabulary_size(), output_mode="one_hot")
            return keras.layers.Identity()
        if isinstance(layer, keras.Model):  # a calibrated model's or an ensemble's members
            return indexed_model(layer)
        return layer

    return keras.models.clone_model(model, input_tensors=inputs, clone_function=swap)


class CategoryCodes:
    """String values -> the indices a ``StringLookup`` of ``vocabulary`` gives them (0: unknown). A dict
    lookup per value: 81 us for 1,000 values, 4.4 ms for 50,000, faster than pandas' ``get_indexer``
    (308 us, 12.5 ms) or a ``Categorical`` (measured here)."""

    def __init__(self, vocabulary: list[str]) -> None:
        self.vocabulary = vocabulary
        self._index = {token: i for i, token in enumerate(vocabulary)}

    def __call__(self, values: np.ndarray) -> np.ndarray:
        flat = values.reshape(-1)
        return np.fromiter((self._index.get(v, 0) for v in flat), dtype=np.int32, count=len(flat)).reshape(-1, 1)


def _serving_form(model: Any) -> tuple[Any, dict[str, CategoryCodes]]:
    """The model XLA can compile (``indexed_model`` where it takes strings) and the lookups feeding it."""
    strings = {key for key, tensor in model.input.items() if tensor.dtype == "string"}
    if not strings:
        return model, {}
    vocabularies = lookup_tables(model, strings)
    if vocabularies is None:
        return model, {}
    codes = {key: CategoryCodes(vocabulary) for key, vocabulary in vocabularies.items()}
    try:
        indexed = indexed_model(model)
        same = _answers_alike(model, indexed, codes)
    except Exception as exc:  # a layer Keras cannot clone this way: the model is served as it is
        log.info("serving this model on its own string inputs (%s)", str(exc).splitlines()[0][:200])
        return model, {}
    if not same:
        log.warning("the category-index form of this model answered differently; serving it on its strings")
        return model, {}
    return indexed, codes


def _answers_alike(model: Any, indexed: Any, codes: dict[str, CategoryCodes]) -> bool:
    """Do ``model`` and its ``indexed_model`` answer alike on rows of every known category and an unknown one?"""
    rows = max(len(c.vocabulary) for c in codes.values())
    strings: dict[str, np.ndarray] = {}
    indices: dict[str, np.ndarray] = {}
    for key, tensor in model.input.items():
        if key in codes:
            tokens = [*codes[key].vocabulary[1:], "\x00 not a category"]
            strings[key] = np.array([[tokens[i % len(tokens)]] for i in range(rows)], dtype=object)
            indices[key] = codes[key](strings[key])
        else:
            strings[key] = indices[key] = np.linspace(-1.0, 1.0, rows, dtype=tensor.dtype).reshape(-1, 1)
    expected = np.asarray(model(strings, training=False))
    return bool(np.allclose(np.asarray(indexed(indices, training=False)), expected, rtol=1e-4, atol=1e-5))


def bucket(rows: int) -> int:
    """The padded batch size XLA runs ``rows`` rows at: the next power of two."""
    return 1 << max(0, rows - 1).bit_length()


class CompiledCall:
    """``model(inputs, training=False)`` for any batch size, through XLA where the model allows."""

    def __init__(self, model: Any, xla: bool = True) -> None:
        import tensorflow as tf

        self._tf = tf
        model, self._codes = _serving_form(model) if xla else (model, {})
        groups: dict[Any, list[str]] = {}
        for key, tensor in model.input.items():
            groups.setdefault(tf.as_dtype(tensor.dtype), []).append(key)
        self._groups = list(groups.items())

        def call(*packed: Any) -> Any:
            inputs = {key: matrix[:, i:i + 1]
                      for matrix, (_, keys) in zip(packed, self._groups, strict=True) for i, key in enumerate(keys)}
            return model(inputs, training=False)

        signature = [tf.TensorSpec((None, len(keys)), dtype) for dtype, keys in self._groups]
        self._plain = flat_caller(tf.function(call, input_signature=signature).get_concrete_function())
        numeric = all(dtype != tf.string for dtype, _ in self._groups)
        self._xla: Callable[[list[Any]], Any] | None = None
        if xla and numeric:
            self._xla = flat_caller(tf.function(call, input_signature=signature, jit_compile=True)
                                    .get_concrete_function())
        self._compiled: set[int] = set()  # batch sizes XLA has compiled
        self._compiling: set[int] = set()
        self._lock = threading.Lock()
        if self._xla is not None:
            self._compile_later(1)  # the most common request, compiled before any asks for it

    @property
    def uses_xla(self) -> bool:
        return self._xla is not None

    @property
    def category_code_columns(self) -> frozenset[str]:
        """The categorical inputs served as category indices looked up before the call (the model's
        category-index form); empty when the model is called on its strings."""
        return frozenset(self._codes)

    @property
    def compiled_sizes(self) -> set[int]:
        with self._lock:
            return set(self._compiled)

    def _zeros(self, rows: int) -> list[Any]:
        return [self._tf.zeros((rows, len(keys)), dtype) for dtype, keys in self._groups]

    def _compile(self, size: int) -> None:
        """Compile XLA for ``size`` rows (a zero batch through it); on failure, stop using XLA."""
        xla = self._xla
        try:
            if xla is not None:
                xla(self._zeros(size))
        except Exception as exc:  # an op XLA cannot compile: the plain function serves every call
            log.info("XLA cannot compile this model (%s); serving it without XLA", str(exc).splitlines()[0][:200])
            self._xla = None
        with self._lock:
            self._compiling.discard(size)
            if self._xla is not None:
                self._compiled.add(size)

    def _compile_later(self, size: int) -> None:
        with self._lock:
            if size in self._compiled or size in self._compiling:
                return
            self._compiling.add(size)
        if not _start_compiling(self._compile, size):  # exiting, or no thread: the plain function serves
            with self._lock:
                self._compiling.discard(size)

    def wait_compiled(self, rows: int) -> bool:
        """Compile the batch size ``rows`` runs at now (for warm-ups and tests); True once XLA serves it."""
        size = bucket(rows)
        with self._lock:
            if size in self._compiled:
                return True
        if self._xla is not None:
            self._compile(size)
        return size in self.compiled_sizes

    def _column(self, inputs: dict[str, np.ndarray], key: str, rows: slice) -> np.ndarray:
        codes = self._codes.get(key)
        return inputs[key][rows] if codes is None else codes(inputs[key][rows])

    def _run(self, inputs: dict[str, np.ndarray], rows: slice) -> np.ndarray:
        matrices = [np.concatenate([self._column(inputs, key, rows) for key in keys], axis=1)
                    for _, keys in self._groups]
        n = len(matrices[0])
        size = bucket(n)
        xla = self._xla
        ready = xla is not None and size in self._compiled
        if ready and size > n:
            matrices = [np.concatenate([m, np.zeros((size - n, m.shape[1]), m.dtype)]) for m in matrices]
        elif xla is not None and not ready:
            self._compile_later(size)
        packed = [self._tf.constant(m, dtype) for m, (dtype, _) in zip(matrices, self._groups, strict=True)]
        function = xla if ready and xla is not None else self._plain
        return np.asarray(function(packed), dtype="float64")[:n]

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(inputs.values())))
        if n <= MAX_CALL_ROWS:
            return self._run(inputs, slice(None))
        return np.concatenate([self._run(inputs, slice(start, start + MAX_CALL_ROWS))
                               for start in range(0, n, MAX_CALL_ROWS)])
