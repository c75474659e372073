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
