"""Learning curves as PNG: drawn with the data (training and validation lines in their colours), sized
as asked, for trials and final models, and private to the owning team like every other route."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from api import create_app
from api.plots import learning_curves
from automl.settings import Settings
from tests.conftest import make_key
from tests.seed import seed_team, tiny_model

BLUE, ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's C0 and C1


def coloured(png: bytes, colour: tuple[int, int, int]) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array(colour)).sum(axis=2) < 30).sum())


def test_curves_are_drawn_from_the_epochs() -> None:
    epochs = [{"epoch": e, "execution": 0, "loss": 1 / (e + 1), "val_loss": 1.2 / (e + 1), "accuracy": e / 10,
               "val_accuracy": e / 12, "learning_rate": 0.001} for e in range(10)]
    png = learning_curves(epochs, "trial 0", width=800)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (800, 120 + 240 * 3)  # loss, accuracy, learning_rate
    assert coloured(png, BLUE) > 500
    assert coloured(learning_curves([], "nothing yet"), BLUE) == 0

    two_runs = epochs + [{**row, "execution": 1, "loss": row["loss"] * 2} for row in epochs]
    assert coloured(learning_curves(two_runs, "two executions"), ORANGE) > 300  # the second run in C1
    assert coloured(learning_curves(epochs, "one execution"), ORANGE) == 0


def test_history_png_routes(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "var"))
    store = app.extensions["automl"].store
    owned = seed_team(store, "alpha", tiny_model(tmp_path / "models"), tmp_path)
    mine, theirs = app.test_client(), app.test_client()
    mine.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(store, 'alpha')}"
    theirs.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(store, 'beta')}"
    for path in (f"/api/v1/jobs/{owned.job}/trials/{owned.trial}/history.png",
                 f"/api/v1/models/{owned.model}/history.png"):
        answer = mine.get(path, query_string={"width": 640, "height": 400})
        assert answer.status_code == 200 and answer.mimetype == "image/png"
        assert Image.open(io.BytesIO(answer.data)).size == (640, 400)
        assert coloured(answer.data, BLUE) > 0
        assert theirs.get(path).status_code == 404
        assert mine.get(path, query_string={"width": 10}).status_code == 422
        assert app.test_client().get(path).status_code == 401


@pytest.mark.parametrize("epochs", [[{"epoch": 0, "loss": float("nan")}], [{"epoch": 0, "loss": "x", "note": None}]])
def test_odd_histories_still_draw(epochs: list[dict[str, object]]) -> None:
    assert Image.open(io.BytesIO(learning_curves(epochs, "odd"))).format == "PNG"
