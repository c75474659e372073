"""The saved .keras file alone maps raw columns (with missing and unseen values) to outputs."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd

from automl.preprocessing.features import fit_features, frame_to_inputs
from automl.preprocessing.layers import build_inputs


def test_features_fitted_on_train_only_and_model_roundtrips(tmp_path: Path) -> None:
    train = pd.DataFrame({"x": [1.0, 3.0, np.nan], "c": ["a", "b", None], "y": [0, 1, 0]})
    specs = fit_features(train, {"x": "numeric", "c": "categorical", "y": "numeric"}, {"y"})
    by_name = {s.name: s for s in specs}
    assert set(by_name) == {"x", "c"}
    assert by_name["x"].mean == 2.0 and by_name["x"].missing_indicator
    assert set(by_name["c"].vocabulary) == {"a", "b", ""}

    inputs, features = build_inputs(specs)
    model = keras.Model(inputs, features)
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)

    raw = frame_to_inputs(pd.DataFrame({"x": [np.nan, 5.0], "c": ["zzz-unseen", "a"]}), specs)
    out = np.asarray(reloaded.predict_on_batch(raw))
    assert np.isfinite(out).all()
    assert np.allclose(out, np.asarray(model.predict_on_batch(raw)))
    # x: missing -> 0 with indicator 1; 5.0 -> (5-2)/1
    assert out[0, 0] == 0.0 and out[0, 1] == 1.0
    assert np.isclose(out[1, 0], 3.0) and out[1, 1] == 0.0


def test_a_column_of_names_or_identifiers_stays_an_input_and_teaches_the_model_nothing() -> None:
    train = pd.DataFrame({
        "c": ["a", "a", "a", "b", "b", "once", None, None],  # one row in eight holds a value of its own
        "id": [f"row-{i}" for i in range(8)],  # a name or an identifier: every value seen once
    })
    specs = {s.name: s for s in fit_features(train, {"c": "categorical", "id": "categorical"}, set())}
    assert not specs["c"].identifier and set(specs["c"].encoded_vocabulary()) == {"a", "b", "once", ""}
    # Every value stays known to the input checks and the profile; the model encodes none of them.
    assert specs["id"].identifier and specs["id"].encoded_vocabulary() == [""] and len(specs["id"].vocabulary) == 8
    assert specs["id"].public_schema()["identifier"] is True and "identifier" not in specs["c"].public_schema()

    inputs, features = build_inputs(list(specs.values()))
    assert set(inputs) == {"c", "id"}  # the serving contract keeps every column
    model = keras.Model(inputs, features)
    raw = frame_to_inputs(pd.DataFrame({"c": ["a", "once", "never seen", None],
                                        "id": ["row-1", "row-2", "row-99", None]}), list(specs.values()))
    out = np.asarray(model.predict_on_batch(raw))
    c_part, id_part = out[:, :5], out[:, 5:]  # [unknown, a, b, missing / once ...] then [unknown, missing]
    assert c_part[0].argmax() != c_part[1].argmax() != c_part[2].argmax()  # the other column keeps every value
    assert (id_part[:3] == id_part[0]).all()  # a known, another known and an unseen identifier: all alike

    # A spec saved before ``identifier`` existed encodes its whole vocabulary, as the model it belongs to does.
    saved = {k: v for k, v in specs["id"].to_dict().items() if k != "identifier"}
    assert type(specs["id"]).from_dict(saved).encoded_vocabulary() == specs["id"].vocabulary
