"""A bounded, thread-safe, least-recently-used cache of loaded predictors.

Deployed models are *pinned*: loaded at start and never evicted; ``maxsize`` bounds the
other (loaded on demand) models, the least recently used going first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from automl.serving.predictor import Predictor


def predictor_loader(threads: int = 0, xla: bool = True) -> Callable[[Path], Predictor]:
    """Loads a ``Predictor`` (through XLA unless ``xla`` is false); the first load in a process sizes
    TensorFlow's thread pools to ``threads`` (0: TensorFlow's default), before TensorFlow runs anything."""

    def load(model_dir: Path) -> Predictor:
        from automl.hypermodels.training import configure_threads
        from automl.serving.predictor import Predictor

        if threads:
            configure_threads(threads)  # a no-op once TensorFlow has started
        return Predictor(model_dir, xla=xla)

    return load


class ModelCache:
    """Loads a model once per process and keeps at most ``maxsize`` unpinned ones."""

    def __init__(self, maxsize: int, loader: Callable[[Path], Predictor] | None = None) -> None:
        self.maxsize = maxsize
        self._loader = loader or predictor_loader()
        self._items: OrderedDict[str, Predictor] = OrderedDict()
        self._pinned: set[str] = set()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def peek(self, model_id: str) -> Predictor | None:
        """The loaded predictor, if any (counts as a use)."""
        with self._lock:
            predictor = self._items.get(model_id)
            if predictor is not None:
                self._items.move_to_end(model_id)
            return predictor

    def get(self, model_id: str, model_dir: Path, pin: bool = False) -> Predictor:
        """The predictor for ``model_id``, loading it from ``model_dir`` if needed (once, however many
        threads ask at the same time). ``pin`` keeps it loaded until ``unpin``."""
        with self._lock:
            if pin:
                self._pinned.add(model_id)
            if model_id in self._items:
                self._items.move_to_end(model_id)
                return self._items[model_id]
            load_lock = self._loading.setdefault(model_id, threading.Lock())
        try:
            with load_lock:
                with self._lock:
                    if model_id in self._items:
                        return self._items[model_id]
                predictor = self._loader(model_dir)
                with self._lock:
                    self._items[model_id] = predictor
                    self._evict()
                    return predictor
        except BaseException:
            if pin:
                self.unpin(model_id)
            raise
        finally:
            with self._lock:
                if self._loading.get(model_id) is load_lock and not load_lock.locked():
                    del self._loading[model_id]

    def discard(self, model_id: str) -> None:
        """Drop the model, pinned or not (it was deleted)."""
        with self._lock:
            self._pinned.discard(model_id)
            self._items.pop(model_id, None)

    @property
    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def unpin(self, model_id: str) -> None:
        """Let the model be evicted like any other (it stays loaded until then)."""
        with self._lock:
            self._pinned.discard(model_id)
            self._evict()

    def _evict(self) -> None:
        unpinned = [key for key in self._items if key not in self._pinned]  # least recently used first
        for key in unpinned[: max(0, len(unpinned) - self.maxsize)]:
            del self._items[key]

    @property
    def pinned(self) -> set[str]:
        with self._lock:
            return set(self._pinned)

    def __contains__(self, model_id: str) -> bool:
        with self._lock:
            return model_id in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
