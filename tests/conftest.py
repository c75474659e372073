from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Two answers of the same served model agree to this: a batch size is answered by the plain function
# until its XLA-compiled call is ready (automl/serving/compiled.py), and the two differ in the last
# float32 digits (2.4e-7 at most in docs/benchmarks.md). Different models differ by far more.
SAME_MODEL = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)


@pytest.fixture
def penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


@pytest.fixture
def penguins_csv(tmp_path: Path, penguins: pd.DataFrame) -> Path:
    path = tmp_path / "penguins.csv"
    penguins.to_csv(path, index=False)
    return path


def add_job(session: Any, target: str = "t") -> str:
    """A minimal dataset "d" and binary job "j" for store-level tests; returns the job id."""
    from automl.store.records import DatasetRecord, JobRecord

    session.add(DatasetRecord(id="d", name="d", source_format="csv", path="/x", n_rows=1, n_columns=2,
                              size_bytes=1, columns=[]))
    session.add(JobRecord(id="j", dataset_id="d", target=target, task="binary", requested_task="auto",
                          tuner="random", objective="val_loss", objective_direction="min", max_trials=3,
                          max_epochs=2, patience=1, seed=0))
    return "j"


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def make_key(store: Any, team: str = "default", admin: bool = False, role: str = "write",
             expires_at: Any = None) -> str:
    """A new API key for ``team`` in ``store`` (as `automl keys create` makes them); returns the key."""
    from automl.access import new_key
    from automl.store import api_keys

    key = new_key()
    with store.session() as session:
        api_keys.add_key(session, key.key_id, key.digest, team, "admin" if admin else role, None, expires_at)
    return key.secret


def client_for(app: Any, team: str = "default", admin: bool = True) -> Any:
    """A Flask test client that sends a new API key of ``team`` with every request."""
    client = app.test_client()
    key = make_key(app.extensions["automl"].store, team, admin)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client
