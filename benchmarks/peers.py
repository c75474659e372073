"""The quality benchmark's peers, run in their own virtual environment (``make peers``), never in
the service's: AutoGluon-Tabular and RealMLP-TD (pytabkit).

    .peers-venv/bin/python benchmarks/peers.py request.json answer.json

``request.json``: {"peer": "autogluon" | "realmlp", "fit": CSV path, "held": CSV path, "target",
"task": binary | multiclass | regression, "time_limit": seconds, "seed"}. ``answer.json``:
{"predictions": [...], "probabilities": [[...]] | null, "classes": [...] | null, "seconds"}.
Only pandas, numpy and the peer's own package are used here; nothing of the service is imported.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd


def _frames(request: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    fit = pd.read_csv(request["fit"])
    # A text column of the training rows stays text in the held-out ones, even where those happen to
    # look like numbers only (GaltonFamilies' family ids: '001' ... '136A'; held out: no letters).
    held = pd.read_csv(request["held"], dtype={c: str for c in fit.columns if fit[c].dtype == object})
    return fit, held


def autogluon(request: dict[str, Any], fit: pd.DataFrame, held: pd.DataFrame) -> dict[str, Any]:
    from autogluon.tabular import TabularPredictor

    target, task = request["target"], request["task"]
    if task != "regression":
        fit[target] = fit[target].astype(str)
    with tempfile.TemporaryDirectory() as path:
        predictor = TabularPredictor(label=target, problem_type=task, path=path, verbosity=0)
        predictor.fit(fit, time_limit=request["time_limit"])
        features = held.drop(columns=[target])
        if task == "regression":
            return {"predictions": predictor.predict(features).tolist(), "probabilities": None, "classes": None}
        probabilities = predictor.predict_proba(features)
        classes = [str(c) for c in probabilities.columns]
        return {"predictions": [classes[i] for i in probabilities.to_numpy().argmax(axis=1)],
                "probabilities": probabilities.to_numpy().tolist(), "classes": classes}


def realmlp(request: dict[str, Any], fit: pd.DataFrame, held: pd.DataFrame) -> dict[str, Any]:
    from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor

    target, task = request["target"], request["task"]

    def features(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.drop(columns=[target]).copy()
        for column in out.columns:
            if out[column].dtype == object or str(out[column].dtype) in ("bool", "boolean", "string"):
                categories = sorted(fit[column].dropna().astype(str).unique())
                out[column] = pd.Categorical(out[column].astype(str).where(out[column].notna(), None),
                                             categories=categories)
            else:
                out[column] = out[column].astype("float64").fillna(float(fit[column].median()))
        return out

    if task == "regression":
        model: Any = RealMLP_TD_Regressor(device="cpu", random_state=request["seed"])
        model.fit(features(fit), fit[target].to_numpy(dtype="float64"))
        return {"predictions": np.asarray(model.predict(features(held))).reshape(-1).tolist(),
                "probabilities": None, "classes": None}
    model = RealMLP_TD_Classifier(device="cpu", random_state=request["seed"])
    model.fit(features(fit), fit[target].astype(str).to_numpy())
    probabilities = np.asarray(model.predict_proba(features(held)))
    classes = [str(c) for c in model.classes_]
    return {"predictions": [classes[i] for i in probabilities.argmax(axis=1)],
            "probabilities": probabilities.tolist(), "classes": classes}


PEERS = {"autogluon": autogluon, "realmlp": realmlp}


def main() -> None:
    with open(sys.argv[1]) as handle:
        request = json.load(handle)
    fit, held = _frames(request)
    started = time.perf_counter()
    answer = PEERS[request["peer"]](request, fit, held)
    answer["seconds"] = time.perf_counter() - started
    with open(sys.argv[2], "w") as out:
        json.dump(answer, out)


if __name__ == "__main__":
    main()
