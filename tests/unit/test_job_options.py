"""Job options and the model card are each declared once; everything else derives from the declaration."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from api.resources.jobs.schemas import JobCreateSchema, JobSchema
from automl.access import Scope
from automl.datasets.ingest import ingest_file
from automl.errors import InvalidJobRequest
from automl.jobs import JobRequest, create_job, progress, search_spec
from automl.search import options
from automl.search.spec import SearchSpec
from automl.settings import Settings
from automl.store import Store
from automl.store.records import DatasetRecord, ModelRecord

README = Path(__file__).resolve().parents[2] / "README.md"
OWNER = Scope("default")


def test_every_option_reaches_the_request_the_answer_the_job_request_the_search_and_the_readme() -> None:
    jobs_row = next(line for line in README.read_text().splitlines() if line.startswith("| `POST /api/v1/jobs`"))
    request = JobCreateSchema().load({"dataset_id": "d", "target": "y"})
    for option in options.declared():
        assert request[option.name] == option.default, option.name
        assert option.name in JobSchema().fields, option.name
        assert option.name in {f.name for f in dataclasses.fields(JobRequest)}, option.name
        assert option.name in {f.name for f in dataclasses.fields(SearchSpec)}, option.name
        assert f"{option.name}?" in jobs_row, f"README's POST /api/v1/jobs row does not name {option.name}"
        assert option.description


def test_option_bounds_come_from_the_declaration() -> None:
    bounded = {o.name: o for o in options.declared() if o.minimum is not None}
    assert set(bounded) >= {"executions_per_trial", "ensemble_size"}
    for name, option in bounded.items():
        errors = JobCreateSchema().validate({"dataset_id": "d", "target": "y", name: int(option.minimum) - 1})
        assert name in errors


@pytest.fixture
def store_and_dataset(tmp_path: Path) -> tuple[Settings, Store, str]:
    settings = Settings(data_dir=tmp_path / "var")
    settings.ensure_dirs()
    store = Store(settings.sqlalchemy_url)
    store.migrate()
    csv = tmp_path / "t.csv"
    pd.DataFrame({"x": range(60), "y": [i % 2 for i in range(60)]}).to_csv(csv, index=False)
    ingested = ingest_file(csv, "t.csv", settings.datasets_dir)
    with store.session() as session:
        session.add(DatasetRecord(id=ingested.id, name="t", source_format="csv", path=str(ingested.path),
                                  n_rows=ingested.n_rows, n_columns=2, size_bytes=1, columns=ingested.columns))
    return settings, store, ingested.id


def test_options_travel_from_the_request_to_the_stored_job_to_the_search(
        store_and_dataset: tuple[Settings, Store, str]) -> None:
    settings, store, dataset_id = store_and_dataset
    chosen: dict[str, Any] = {"executions_per_trial": 2, "target_score": 0.9, "refit": False, "ensemble_size": 0,
                              "portfolio": False, "calibrate": True, "retrainings": 2}
    assert set(chosen) | {"mixed_precision"} == {o.name for o in options.declared()}
    with store.session() as session:
        job = create_job(session, settings, JobRequest(dataset_id=dataset_id, target="y", **chosen), OWNER)
        job_id = job.id
    with store.session() as session:
        job = session.get(type(job), job_id)
        spec = search_spec(job, session.get(DatasetRecord, dataset_id), settings)
        view = progress(session, job)
    for name, value in {**chosen, "mixed_precision": False}.items():
        assert getattr(spec, name) == value and view[name] == value, name
    with store.session() as session, pytest.raises(InvalidJobRequest, match="ensemble_size is at most 10"):
        create_job(session, settings, JobRequest(dataset_id=dataset_id, target="y", ensemble_size=11), OWNER)
    with store.session() as session, pytest.raises(InvalidJobRequest, match="retrainings is at most 10"):
        create_job(session, settings, JobRequest(dataset_id=dataset_id, target="y", retrainings=11), OWNER)


def test_a_job_stored_before_an_option_existed_reads_its_default() -> None:
    stored = {"executions_per_trial": 1, "target_score": None, "refit": True, "ensemble_size": 1,
              "mixed_precision": False}  # as migration 0009 folded a job from before `portfolio`
    assert options.from_stored(stored).portfolio is True and options.from_stored(stored).calibrate is None
    assert options.from_stored(stored).retrainings == 4
    assert options.from_stored(None) == options.SearchOptions()
    assert options.from_stored({**stored, "retired_option": 1}).ensemble_size == 1


def test_every_model_card_entry_is_a_model_record_column() -> None:
    from automl.search.runner import TrainedModel

    trained = TrainedModel(model=None, best_trial_id="t", hyperparameters={}, history=None, validation_metrics={},
                           test_metrics={}, confusion_matrix=None, input_schema=[], split_sizes={},
                           supports_uncertainty=False)
    columns = set(ModelRecord.__table__.columns.keys())
    assert set(trained.card()) <= columns, set(trained.card()) - columns
