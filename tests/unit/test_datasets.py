from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.datasets.ingest import ingest_file, load_frame
from automl.datasets.schema import infer_type
from automl.errors import InvalidDataset
from automl.preprocessing.values import BadValue, cells_to_array, number
from tests.conftest import write


def test_penguins_schema_and_missing_counts(tmp_path: Path, penguins_csv: Path, penguins: pd.DataFrame) -> None:
    dataset = ingest_file(penguins_csv, "penguins.csv", tmp_path / "store")
    columns = {c["name"]: c for c in dataset.columns}
    assert dataset.n_rows == len(penguins) and dataset.n_columns == penguins.shape[1]
    assert columns["species"]["type"] == "categorical"
    assert columns["species"]["top_values"] == penguins["species"].value_counts().to_dict()
    assert columns["bill_length_mm"]["type"] == "numeric"
    assert columns["bill_length_mm"]["missing"] == int(penguins["bill_length_mm"].isna().sum()) == 2
    assert columns["sex"]["missing"] == int(penguins["sex"].isna().sum())
    stored = load_frame(dataset.path)
    assert list(stored.columns) == list(penguins.columns)
    assert dataset.path.parent.parent == tmp_path / "store"


def test_boolean_inference_and_storage(tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", "flag,x\ntrue,1\nFALSE,2\n,3\nTrue,4\n")
    dataset = ingest_file(path, "b.csv", tmp_path / "store")
    assert dataset.columns[0]["type"] == "boolean" and dataset.columns[0]["missing"] == 1
    assert load_frame(dataset.path)["flag"].tolist()[:2] == [True, False]


def test_two_valued_text_keeps_its_words(tmp_path: Path) -> None:
    """yes/no is not turned into true/false: the profile, the stored values and so every class and
    prediction use the words as uploaded."""
    path = write(tmp_path, "b.csv", "answer,x\nyes,1\nno,2\n,3\nyes,4\n")
    dataset = ingest_file(path, "b.csv", tmp_path / "store")
    column = dataset.columns[0]
    assert column["type"] == "categorical" and column["missing"] == 1 and column["unique"] == 2
    stored = load_frame(dataset.path)["answer"]
    assert stored.iloc[[0, 1, 3]].tolist() == ["yes", "no", "yes"] and stored.isna().iloc[2]


def test_parquet_upload(tmp_path: Path, penguins: pd.DataFrame) -> None:
    path = tmp_path / "p.bin"
    penguins.to_parquet(path)
    dataset = ingest_file(path, "whatever.bin", tmp_path / "store")
    assert dataset.source_format == "parquet" and dataset.n_rows == len(penguins)


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("empty.csv", b"", "empty"),
        ("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("ragged.csv", "a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n", "line 4"),
        ("dupes.csv", "a,b,a\n1,2,3\n", "repeats column names: a"),
        ("one.csv", "a\n1\n2\n", "at least two"),
        ("header.csv", "a,b\n", "no data rows"),
        ("latin1.csv", "name,city\nJos\xe9,M\xe1laga\n".encode("latin-1"), "UTF-8"),
        ("noname.csv", "a,,c\n1,2,3\n", "Column 2"),
        ("fake.parquet", "a,b\n1,2\n", "not a Parquet file"),
    ],
)
def test_bad_uploads_are_named_and_leave_nothing(tmp_path: Path, name: str, content: bytes | str, needle: str) -> None:
    path = write(tmp_path, name, content)
    store = tmp_path / "store"
    store.mkdir()
    with pytest.raises(InvalidDataset) as caught:
        ingest_file(path, name, store)
    assert needle in caught.value.message
    assert list(store.iterdir()) == []


def test_infer_type() -> None:
    assert infer_type(pd.Series([1.0, None, 3.0])) == "numeric"
    assert infer_type(pd.Series(["a", "b", None])) == "categorical"
    assert infer_type(pd.Series(["true", "false"])) == "boolean"
    assert infer_type(pd.Series([True, None, False], dtype=object)) == "boolean"
    assert infer_type(pd.Series(["yes", "no"])) == "categorical"
    assert infer_type(pd.Series(["Y", "N", None])) == "categorical"
    assert infer_type(pd.Series(["yes", "maybe"])) == "categorical"


def test_numbers_with_missing_markers_are_numeric_and_the_markers_missing(tmp_path: Path) -> None:
    """An OpenML/ARFF export writes ``?`` for a missing number, Stata ``.``: the column stays numbers."""
    assert infer_type(pd.Series(["1.5", "?", "3", None])) == "numeric"
    assert infer_type(pd.Series(["12", ".", "N/A", "-"])) == "numeric"
    assert infer_type(pd.Series(["?", "?"])) == "categorical"  # markers only: nothing says they are numbers
    assert infer_type(pd.Series(["12", "?", "twelve"])) == "categorical"  # a word that is no marker: text
    path = tmp_path / "marked.csv"
    path.write_text("age,blood,y\n41,?,a\n?,7.5,b\n38,6.25,a\n.,5,b\n")
    stored = ingest_file(path, "marked.csv", tmp_path / "store")
    columns = {c["name"]: c for c in stored.columns}
    assert columns["age"]["type"] == columns["blood"]["type"] == "numeric"
    assert columns["age"]["missing"] == 2 and columns["age"]["stats"]["max"] == 41
    assert load_frame(stored.path)["blood"].tolist()[1:] == [7.5, 6.25, 5.0]
    # The same cells in a file to score and in JSON: missing, not refused.
    cells = cells_to_array(pd.Series(["?", " n/a ", "4", "x"]), "numeric")
    assert np.isnan(cells.array[:2, 0]).all() and cells.array[2, 0] == 4 and cells.bad.tolist() == [0, 0, 0, 1]
    assert math.isnan(number("?")) and math.isnan(number("NA"))
    with pytest.raises(BadValue):
        number("x")
