"""The image search space, the CNN and backbones it builds, jobs on image datasets, and image predictions."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path
from typing import Any

import h5py
import keras
import keras_tuner as kt
import numpy as np
import pytest
from flask.testing import FlaskClient
from keras.src.legacy.saving import legacy_h5_format
from PIL import Image

from api import create_app
from automl.access import Scope
from automl.datasets.ingest import ingest_file
from automl.errors import InvalidInstances, InvalidJobRequest
from automl.hypermodels.backbones import BACKBONES, weights_path
from automl.hypermodels.cnn import ImageCNN
from automl.hypermodels.narrowing import normalize_overrides
from automl.hypermodels.space import describe
from automl.jobs import JobRequest, create_job
from automl.registry import load_keras_model, save_model
from automl.serving.adapters import image_files, json_instances
from automl.serving.predictor import Predictor
from automl.settings import Settings
from automl.store import Store
from automl.store.records import DatasetRecord
from tests.conftest import client_for
from tests.image_data import digit_images, digits_archive, png_bytes


def _cnn(overrides: dict[str, Any], size: int = 16, channels: int = 1, task: str = "multiclass",
         **kwargs: Any) -> tuple[ImageCNN, kt.HyperParameters]:
    model = ImageCNN(task, 3 if task == "multiclass" else 1, "val_loss", "min", patience=2, n_train=40,
                     overrides=normalize_overrides(overrides, task, "image"), image_size=size, channels=channels,
                     **kwargs)
    return model, kt.HyperParameters()


def _images(n: int, size: int, channels: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (n, size, size, channels)).astype("float32")


def test_image_space_is_its_own_and_backbones_are_searched_only_on_request() -> None:
    described = {d["name"]: d for d in describe(kind="image")}
    assert {"conv_blocks", "filters", "kernel_size", "conv_stride", "padding", "conv_batch_norm", "pooling",
            "spatial_dropout", "global_pooling", "dense_units", "conv_residual", "augment", "flip", "rotation",
            "zoom", "contrast", "optimizer", "learning_rate", "lr_schedule", "batch_size", "backbone"} <= set(described)
    assert described["backbone"]["searched_by_default"] == ["none"]
    assert "num_layers" not in described
    with pytest.raises(InvalidJobRequest) as caught:
        normalize_overrides({"num_layers": 2, "pretrained": True, "conv_blocks": 9}, "multiclass", "image")
    problems = " ".join(caught.value.errors["search_space"])
    assert "num_layers: unknown hyperparameter for image datasets" in problems
    assert "pretrained: can never be used" in problems and "conv_blocks" in problems


@pytest.mark.parametrize("overrides", [
    {"conv_blocks": 5, "convs_per_block": 2, "conv_stride": 2, "padding": "valid", "kernel_size": 7},
    {"conv_blocks": 3, "conv_residual": True, "conv_stride": 2, "pooling": "average", "spatial_dropout": 0.2,
     "global_pooling": "flatten", "dense_units": 0, "conv_batch_norm": False, "conv_activation": "gelu"},
    {"augment": True, "flip": "horizontal_and_vertical", "rotation": 0.2, "zoom": 0.2, "contrast": 0.2,
     "global_pooling": "max", "optimizer": "sgd", "lr_schedule": "exponential"},
])
def test_every_cnn_combination_builds_trains_and_serves_without_augmentation(overrides: dict[str, Any]) -> None:
    hypermodel, hp = _cnn(overrides)
    model = hypermodel.build(hp)
    x, y = _images(8, 16, 1), np.arange(8) % 3
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    layers = [type(layer).__name__ for layer in model.layers]
    blocks = int(hp.values["conv_blocks"])
    assert layers.count("Conv2D") >= blocks * int(hp.values["convs_per_block"])
    assert ("SpatialDropout2D" in layers) == (hp.values["spatial_dropout"] > 0)
    assert ("Add" in layers) == bool(hp.values["conv_residual"])
    served = hypermodel.serving_model(hp, model)
    assert not [layer for layer in served.layers if type(layer).__name__.startswith("Random")]
    assert np.allclose(served.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    if overrides.get("augment"):
        assert {"RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast"} <= set(layers)


def test_the_model_takes_raw_images_of_any_size(tmp_path: Path) -> None:
    hypermodel, hp = _cnn({"conv_blocks": 2}, size=16, channels=3)
    model = hypermodel.serving_model(hp, hypermodel.build(hp))
    save_model(model, {"task": "multiclass"}, tmp_path, "m")
    loaded = load_keras_model(tmp_path / "m")
    for side in (7, 16, 50):
        assert loaded.predict_on_batch(_images(2, side, 3)).shape == (2, 3)
    image = _images(1, 40, 3)
    resized = keras.layers.Resizing(16, 16)(image)
    assert np.allclose(loaded.predict_on_batch(image), loaded.predict_on_batch(np.asarray(resized)), atol=1e-5)


def test_mixed_precision_trains_in_float16_and_serves_in_float32() -> None:
    hypermodel, hp = _cnn({"conv_blocks": 1, "filters": 8}, mixed_precision=True)
    model = hypermodel.build(hp)
    assert model.get_layer("conv_0_0").compute_dtype == "float16"
    assert model.get_layer("conv_0_0").kernel.dtype == "float32"  # variables stay float32
    assert model.output.dtype == "float32"
    model.fit(_images(4, 16, 1), np.arange(4) % 3, epochs=1, verbose=0)
    served = hypermodel.serving_model(hp, model)
    assert {layer.compute_dtype for layer in served.layers if layer.weights} == {"float32"}
    assert keras.config.dtype_policy().name == "float32"  # the process's policy is left as it was


def test_backbone_starts_from_the_operators_local_weight_file(tmp_path: Path) -> None:
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    # Written in the legacy HDF5 layout of the files Keras downloads into ~/.keras/models.
    with h5py.File(weights_path("mobilenet_v2", tmp_path), "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, reference)
    hypermodel, hp = _cnn({"backbone": "mobilenet_v2", "dense_units": 0}, size=32, channels=1,
                          weights_dir=tmp_path)
    model = hypermodel.build(hp)
    network = model.get_layer("backbone_mobilenet_v2")
    assert not network.trainable and hp.values["freeze_backbone"] is True
    for ours, theirs in zip(network.weights, reference.weights, strict=True):
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    assert model.predict_on_batch(_images(2, 32, 1)).shape == (2, 3)  # grayscale repeated to RGB inside

    missing, hp = _cnn({"backbone": "mobilenet_v2"}, size=32, weights_dir=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing"):
        missing.build(hp)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_backbones_from_scratch_save_and_load_in_safe_mode(backbone: str, tmp_path: Path) -> None:
    hypermodel, hp = _cnn({"backbone": backbone, "pretrained": False}, size=32, channels=3, task="binary")
    model = hypermodel.serving_model(hp, hypermodel.build(hp))
    assert model.get_layer(f"backbone_{backbone}").trainable
    x = _images(2, 32, 3)
    save_model(model, {"task": "binary"}, tmp_path, "m")
    loaded = load_keras_model(tmp_path / "m")  # safe_mode=True
    assert np.allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)


# --- jobs on image datasets ------------------------------------------------------------------

OWNER = Scope("default")


@pytest.fixture
def image_dataset(tmp_path: Path) -> tuple[Settings, Store, str]:
    settings = Settings(data_dir=tmp_path / "var")
    settings.ensure_dirs()
    store = Store(settings.sqlalchemy_url)
    store.migrate()
    ingested = ingest_file(digits_archive(tmp_path / "d.zip", 60, classes=3), "d.zip", settings.datasets_dir)
    with store.session() as session:
        session.add(DatasetRecord(id=ingested.id, name="d", source_format="zip", path=str(ingested.path),
                                  n_rows=ingested.n_rows, n_columns=1, size_bytes=1, columns=ingested.columns,
                                  kind="image", images=ingested.images))
    return settings, store, ingested.id


def test_image_jobs_default_target_and_size_and_refuse_missing_weights(image_dataset: Any) -> None:
    settings, store, dataset_id = image_dataset
    with store.session() as session:
        job = create_job(session, settings, JobRequest(dataset_id=dataset_id, target=None), OWNER)
        assert (job.target, job.task, job.image_size, job.classes) == ("label", "multiclass", 32, ["0", "1", "2"])
        with pytest.raises(InvalidJobRequest, match=r"efficientnetb0_notop\.h5"):
            create_job(session, settings, JobRequest(dataset_id=dataset_id, target=None,
                                                     search_space={"backbone": ["none", "efficientnet_b0"]}), OWNER)
        scratch = create_job(session, settings, JobRequest(dataset_id=dataset_id, target=None, mixed_precision=True,
                                                           search_space={"backbone": "resnet50", "pretrained": False}),
                             OWNER)
        assert scratch.options["mixed_precision"] and scratch.search_space["backbone"] == {"fixed": "resnet50"}
        with pytest.raises(InvalidJobRequest, match="at least 32 pixels"):
            create_job(session, settings, JobRequest(dataset_id=dataset_id, target=None, image_size=16,
                                                     search_space={"backbone": "resnet50", "pretrained": False}), OWNER)
        weights_path("resnet50", settings.backbones_dir).parent.mkdir(parents=True)
        weights_path("resnet50", settings.backbones_dir).write_bytes(b"weights")
        assert create_job(session, settings, JobRequest(dataset_id=dataset_id, target=None,
                                                        search_space={"backbone": "resnet50"}), OWNER).image_size == 32


def test_image_options_are_refused_for_tables(tmp_path: Path) -> None:
    client: FlaskClient = client_for(create_app(Settings(data_dir=tmp_path / "var", broker_url="redis://127.0.0.1:1/0",
                                              max_compression_ratio=50)))
    csv = "a,b\n" + "\n".join(f"{i},{i % 2}" for i in range(30))
    dataset = client.post("/api/v1/datasets", data={"file": (io.BytesIO(csv.encode()), "t.csv")},
                          content_type="multipart/form-data").get_json()
    response = client.post("/api/v1/jobs", json={"dataset_id": dataset["id"], "target": "b", "image_size": 32})
    assert response.status_code == 422 and "image datasets only" in response.get_json()["message"]
    response = client.post("/api/v1/jobs", json={"dataset_id": dataset["id"]})
    assert response.status_code == 422 and "'target' is required" in response.get_json()["message"]
    zipped = client.post("/api/v1/datasets", data={"file": (io.BytesIO(b"PK\x05\x06" + b"\0" * 18), "e.zip")},
                         content_type="multipart/form-data")
    assert zipped.status_code == 422 and "no readable images" in zipped.get_json()["message"]
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a/big.png", b"\0" * (8 * 1024 * 1024))
    refused = client.post("/api/v1/datasets", data={"file": (io.BytesIO(bomb.getvalue()), "b.zip")},
                          content_type="multipart/form-data")
    assert refused.status_code == 413 and "zip bombs" in refused.get_json()["message"]
    assert [d["kind"] for d in client.get("/api/v1/datasets").get_json()] == ["tabular"]
    assert sorted(p.name for p in (tmp_path / "var" / "datasets").iterdir()) == [dataset["id"]]


# --- predictions -------------------------------------------------------------------------------


@pytest.fixture
def image_predictor(tmp_path: Path) -> Predictor:
    hypermodel, hp = _cnn({"conv_blocks": 1, "filters": 8, "head_dropout": 0.3}, size=16, channels=1)
    model = hypermodel.serving_model(hp, hypermodel.build(hp))
    save_model(model, {"kind": "image", "task": "multiclass", "target": "label", "classes": ["a", "b", "c"],
                       "features": [], "image": {"size": 16, "channels": 1}}, tmp_path, "m")
    return Predictor(tmp_path / "m")


def test_image_predictions_keep_request_order_across_sizes(image_predictor: Predictor) -> None:
    images, _ = digit_images(6)
    files = [png_bytes(image.resize((16 + 8 * (i % 3),) * 2)) for i, image in enumerate(images)]
    by_file = image_files(image_predictor, [(f"{i}.png", data) for i, data in enumerate(files)])
    one_by_one = [image_predictor.probabilities(image_files(image_predictor, [("x", data)])).mean[0]
                  for data in files]
    together = image_predictor.probabilities(by_file).mean
    assert np.allclose(together, np.array(one_by_one), atol=1e-6)
    b64 = json_instances(image_predictor, [{"b64": base64.b64encode(data).decode()} for data in files])
    assert np.allclose(image_predictor.probabilities(b64).mean, together)
    out = image_predictor.probabilities(by_file, mc_samples=5)
    assert out.std is not None and out.std.shape == (6, 3) and out.std.max() > 0
    predictions, _ = image_predictor.predict(by_file)
    assert len(predictions) == 6 and set(predictions) <= {"a", "b", "c"}


def test_unusable_images_name_the_file_or_row(image_predictor: Predictor) -> None:
    good = png_bytes(Image.new("L", (4, 4)))
    with pytest.raises(InvalidInstances) as caught:
        image_files(image_predictor, [("ok.png", good), ("bad.png", b"GIF89a broken"), ("empty.png", b"")])
    assert set(caught.value.errors) == {"bad.png", "empty.png"} and "bad.png" in caught.value.message
    with pytest.raises(InvalidInstances) as caught:
        json_instances(image_predictor, [{"b64": "not base64!"}, {"image": "x"}, "text"])
    assert set(caught.value.errors) == {"instances.0", "instances.1", "instances.2"}
    with pytest.raises(InvalidInstances, match="at most 256"):
        json_instances(image_predictor, [{"b64": base64.b64encode(good).decode()}] * 257)


def test_hostile_images_at_predict_time_are_named(image_predictor: Predictor,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A zero-size header, a format outside the list (EPS would reach Ghostscript), a zip posing as an
    image: each a 422 naming the file; a polyglot that is a valid PNG is just a PNG. Pixel bombs, one
    image or the request's total, are a 413 from the headers alone: nothing is decoded."""
    from automl.errors import TooLarge
    from automl.serving import images
    from tests.hostile import EPS, _zip, png_header, polyglot_png

    hostile = [("zero.png", png_header(0, 10)), ("page.png", EPS), ("archive.png", _zip([("a.txt", b"x")]))]
    with pytest.raises(InvalidInstances) as caught:
        image_files(image_predictor, [("ok.png", polyglot_png()), *hostile])
    assert set(caught.value.errors) == {name for name, _ in hostile}
    assert len(image_predictor.predict(image_files(image_predictor, [("poly.png", polyglot_png())]))[0]) == 1

    def never(*args: object) -> None:
        raise AssertionError("an image was decoded before the sizes were checked")

    monkeypatch.setattr(images, "decode_image", never)
    for bomb in (png_header(30_000, 30_000), png_header(5_000, 5_000)):  # Pillow's own limit, and ours
        with pytest.raises(TooLarge, match=r"bomb\.png") as refused:
            image_files(image_predictor, [("ok.png", polyglot_png()), ("bomb.png", bomb)])
        assert "pixels" in refused.value.message
    many = [(f"{i}.png", png_header(4000, 4000)) for i in range(5)]  # each allowed, 80M together
    with pytest.raises(TooLarge, match="together"):
        image_files(image_predictor, many)


def test_search_space_endpoint_documents_the_image_space(tmp_path: Path) -> None:
    client = client_for(create_app(Settings(data_dir=tmp_path / "var")))
    body = client.get("/api/v1/search-space?kind=image&task=multiclass").get_json()
    names = {h["name"]: h for h in body["hyperparameters"]}
    assert "conv_blocks" in names and "num_layers" not in names and "loss" not in names
    assert names["backbone"]["searched_by_default"] == ["none"]
    assert client.get("/api/v1/search-space?kind=audio").status_code == 422
