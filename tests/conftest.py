from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path
