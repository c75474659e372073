"""A team's worth of records over a real (tiny, untrained) Keras model, for in-process API tests.

The model takes numeric, boolean and categorical inputs through the service's own
preprocessing layers and is saved as the registry saves models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl.preprocessing.features import FeatureSpec

SPECS = [
    FeatureSpec(name="size", key="size", kind="numeric", mean=5.0, std=2.0, missing_indicator=True),
    FeatureSpec(name="flag", key="flag", kind="boolean", mean=0.5, std=0.5),
    FeatureSpec(name="colour name", key="colour_name", kind="categorical", vocabulary=["red", "blue", ""]),
]
CLASSES = ["no", "=SUM(A1)"]  # a label a spreadsheet would run: must come out escaped in CSV
SHARED_ALIAS = "shared-name"
ROW = {"size": 4.5, "flag": True, "colour name": "red"}


def tiny_model(folder: Path, model_id: str = "m1", specs: list[FeatureSpec] | None = None) -> Path:
    """``specs`` (default ``SPECS``): the model's input columns."""
    import keras

    from automl.preprocessing.layers import build_inputs
    from automl.registry import save_model

    keras.utils.set_random_seed(3)
    specs = specs or SPECS
    inputs, features = build_inputs(specs)
    hidden = keras.layers.Dense(8, activation="tanh")(features)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    metadata = {"task": "binary", "target": "label", "classes": CLASSES, "features": [s.to_dict() for s in specs]}
    return save_model(model, metadata, folder, model_id)


@dataclass(frozen=True)
class Owned:
    """The ids of one team's dataset, job (with one trial and its history), ready model and alias (the
    model also has the alias ``SHARED_ALIAS``, which every seeded team has)."""

    team: str
    dataset: str
    job: str
    trial: str
    model: str
    alias: str


def seed_team(store: Any, team: str, model_dir: Path, folder: Path) -> Owned:
    """Records for ``team`` over ``model_dir``; its dataset (40 rows, sizes and labels varying) is
    written into ``folder``."""
    import pandas as pd

    from automl.store.records import (
        AliasRecord,
        DatasetRecord,
        EpochRecord,
        JobRecord,
        ModelRecord,
        TrialRecord,
        utcnow,
    )

    owned = Owned(team=team, dataset=f"{team}-dataset", job=f"{team}-job", trial="0", model=f"{team}-model",
                  alias=f"{team}-alias")
    dataset_path = folder / f"{team}-dataset.parquet"
    pd.DataFrame([{**ROW, "size": float(i), "label": CLASSES[i % 2]} for i in range(40)]).to_parquet(dataset_path)
    columns = [{"name": s.name, "type": s.kind} for s in SPECS] + [{"name": "label", "type": "categorical"}]
    with store.session() as session:
        session.add(DatasetRecord(id=owned.dataset, team=team, name="d.csv", source_format="csv",
                                  path=str(dataset_path), n_rows=40, n_columns=4, size_bytes=1, columns=columns))
        session.add(JobRecord(id=owned.job, team=team, dataset_id=owned.dataset, target="label", task="binary",
                              requested_task="auto", tuner="random", objective="val_loss", objective_direction="min",
                              max_trials=1, max_epochs=1, patience=1, seed=0, state="succeeded",
                              started_at=utcnow(), finished_at=utcnow(), model_id=owned.model, trials_done=1))
        session.flush()
        session.add(TrialRecord(job_id=owned.job, trial_id=owned.trial, number=0, state="completed",
                                hyperparameters={"num_layers": 1}, score=0.5, finished_at=utcnow()))
        session.add(EpochRecord(job_id=owned.job, trial_id=owned.trial, execution=0, epoch=0,
                                metrics={"loss": 0.7, "val_loss": 0.6}))
        session.add(ModelRecord(id=owned.model, team=team, job_id=owned.job, dataset_id=owned.dataset,
                                task="binary", target="label", classes=CLASSES, state="ready", path=str(model_dir),
                                input_schema=[{"name": s.name, "type": s.kind} for s in SPECS],
                                history=[{"epoch": 0, "loss": 0.7}]))
        session.flush()
        session.add(AliasRecord(team=team, name=owned.alias, model_id=owned.model))
        session.add(AliasRecord(team=team, name=SHARED_ALIAS, model_id=owned.model))  # the same name in every team
    return owned
