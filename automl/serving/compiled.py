"""The model call serving runs: ``model(inputs, training=False)`` as compiled TensorFlow functions.

Never ``model.predict``, which builds a dataset and a progress loop on every call (49 ms for one
row), nor a plain ``tf.function`` call with one tensor per column: converting each column to a
tensor costs about 20 us, which at one row is most of the call. The function takes one matrix per
dtype (all float columns in one, all string columns in another) and slices the columns out inside
the graph: 0.38 ms instead of 0.85 ms for one row of wine's 13 columns (measured here).

A model whose inputs are all numbers is also compiled with XLA, which fuses the per-column
preprocessing and the layers into a few kernels: one row of breast_cancer's 30 columns took
0.24 ms instead of 0.54 ms, 1,000 rows 1.0 ms instead of 3.0 ms (measured here, 2026-12-02). XLA
compiles once per batch shape (about 0.25 s each), so batches are padded to the next power of two
(at most 15 shapes up to ``MAX_CALL_ROWS``); a shape not compiled yet is answered by the plain
function while a background thread compiles it, so no request waits for a compilation (nor
does loading: the one-row shape starts compiling when the model loads). String inputs
(categorical columns) cannot go through XLA, so such models keep the plain function; so does any
model XLA fails to compile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MAX_CALL_ROWS = 16_384  # larger inputs go through the model in slices of this many rows


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


def bucket(rows: int) -> int:
    """The padded batch size XLA runs ``rows`` rows at: the next power of two."""
    return 1 << max(0, rows - 1).bit_length()


class CompiledCall:
    """``model(inputs, training=False)`` for any batch size, through XLA where the model allows."""

    def __init__(self, model: Any, xla: bool = True) -> None:
        import tensorflow as tf

        self._tf = tf
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
        self._plain(self._zeros(1))  # the first call allocates; pay it at load, not on a request
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
        threading.Thread(target=self._compile, args=(size,), name=f"xla-compile-{size}", daemon=True).start()

    def wait_compiled(self, rows: int, timeout_s: float = 60.0) -> bool:
        """Compile the batch size ``rows`` runs at now (for warm-ups and tests); True once XLA serves it."""
        size = bucket(rows)
        with self._lock:
            if size in self._compiled:
                return True
        if self._xla is not None:
            self._compile(size)
        return size in self.compiled_sizes

    def _run(self, inputs: dict[str, np.ndarray], rows: slice) -> np.ndarray:
        matrices = [np.concatenate([inputs[key][rows] for key in keys], axis=1) for _, keys in self._groups]
        n = len(matrices[0])
        size = bucket(n)
        xla = self._xla
        if xla is not None and size in self._compiled:
            if size > n:
                matrices = [np.concatenate([m, np.zeros((size - n, m.shape[1]), m.dtype)]) for m in matrices]
            packed = [self._tf.constant(m, dtype) for m, (dtype, _) in zip(matrices, self._groups, strict=True)]
            return np.asarray(xla(packed), dtype="float64")[:n]
        if xla is not None:
            self._compile_later(size)
        packed = [self._tf.constant(m, dtype) for m, (dtype, _) in zip(matrices, self._groups, strict=True)]
        return np.asarray(self._plain(packed), dtype="float64")

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(inputs.values())))
        if n <= MAX_CALL_ROWS:
            return self._run(inputs, slice(None))
        return np.concatenate([self._run(inputs, slice(start, start + MAX_CALL_ROWS))
                               for start in range(0, n, MAX_CALL_ROWS)])
