"""Reports of a job trained by the production shape: its TensorBoard logs (written by the worker,
one run per trial) as a zip, and learning curves as PNG; both private to the owning team."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.integration.conftest import Service, as_key, create_key

pytestmark = pytest.mark.integration


def test_tensorboard_logs_and_learning_curve_images(distributed: Service, penguins_model: str,
                                                    tmp_path: Path) -> None:
    assert distributed.env is not None
    base = f"{distributed.url}/api/v1"
    job_id = distributed.http.get(f"{base}/models/{penguins_model}", timeout=10).json()["job_id"]
    trials = distributed.http.get(f"{base}/jobs/{job_id}/trials", timeout=10).json()["trials"]

    answer = distributed.http.get(f"{base}/jobs/{job_id}/tensorboard.zip", timeout=60)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path)
    for trial in trials:
        for split in ("train", "validation"):
            assert any(n.startswith(f"tensorboard/trial_{trial['trial_id']}/{split}/events.out.tfevents")
                       for n in names), names
        logs = EventAccumulator(str(tmp_path / "tensorboard" / f"trial_{trial['trial_id']}" / "validation"))
        logs.Reload()
        assert len(logs.Tensors("epoch_loss")) == trial["epochs_done"] > 0  # one point per recorded epoch

    for path in (f"{base}/jobs/{job_id}/trials/{trials[0]['trial_id']}/history.png",
                 f"{base}/models/{penguins_model}/history.png"):
        image = distributed.http.get(path, timeout=60)
        assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(image.content)).size[0] == 900

    other = as_key(create_key(distributed.env, "reports-other-team"))
    for path in (f"{base}/jobs/{job_id}/tensorboard.zip", f"{base}/models/{penguins_model}/history.png",
                 f"{base}/jobs/{job_id}/trials/{trials[0]['trial_id']}/history.png"):
        assert other.get(path, timeout=30).status_code == 404, path
