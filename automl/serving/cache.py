"""A bounded, thread-safe, least-recently-used cache of loaded predictors."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from automl.serving.predictor import Predictor


class ModelCache:
    """Loads a model once per process and keeps at most ``maxsize`` of them."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[str, Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def peek(self, model_id: str) -> Predictor | None:
        """The loaded predictor, if any (counts as a use)."""
        with self._lock:
            predictor = self._items.get(model_id)
            if predictor is not None:
                self._items.move_to_end(model_id)
            return predictor

    def get(self, model_id: str, model_dir: Path) -> Predictor:
        with self._lock:
            if model_id in self._items:
                self._items.move_to_end(model_id)
                return self._items[model_id]
            load_lock = self._loading.setdefault(model_id, threading.Lock())
        with load_lock:  # one load per model, even under concurrent first requests
            with self._lock:
                if model_id in self._items:
                    return self._items[model_id]
            from automl.serving.predictor import Predictor

            predictor = Predictor(model_dir)
            with self._lock:
                self._items[model_id] = predictor
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
                self._loading.pop(model_id, None)
            return predictor

    def __contains__(self, model_id: str) -> bool:
        with self._lock:
            return model_id in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
