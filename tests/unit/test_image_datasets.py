"""Zip archives of images -> datasets: layouts, formats, modes, skipped files, and refused archives."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from automl.datasets.images import default_image_size
from automl.datasets.ingest import ingest_file
from automl.datasets.limits import UploadLimits
from automl.errors import InvalidDataset, TooLarge
from automl.preprocessing.pixels import BadImage, PixelBomb, decode_image, open_image
from tests.image_data import digits_archive, png_bytes


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _image(mode: str, size: tuple[int, int], fmt: str, color: object = 128) -> bytes:
    return png_bytes(Image.new(mode, size, color), fmt)


def test_folder_archive_with_every_format_and_mode(tmp_path: Path) -> None:
    members = {
        "cats/a.png": _image("L", (20, 10), "PNG"),
        "cats/b.jpg": _image("RGB", (30, 30), "JPEG", (200, 10, 10)),
        "cats/c.bmp": _image("RGB", (30, 30), "BMP", (1, 2, 3)),
        "cats/d.webp": _image("RGBA", (30, 30), "WEBP", (5, 6, 7, 100)),
        "cats/e.gif": _image("P", (30, 30), "GIF", 3),
        "dogs/a.png": _image("LA", (30, 30), "PNG", (9, 200)),
        "dogs/b.png": _image("I;16", (30, 30), "PNG", 40000),
        "dogs/c.png": _image("RGBA", (40, 20), "PNG", (1, 1, 1, 0)),
        "dogs/d.png": _image("L", (30, 30), "PNG"),
        "dogs/e.png": _image("L", (30, 30), "PNG"),
        "dogs/notes.txt": b"not an image",
        "dogs/truncated.png": _image("L", (30, 30), "PNG")[:60],
        "__MACOSX/dogs/._a.png": b"resource fork",
        "dogs/.DS_Store": b"finder",
    }
    dataset = ingest_file(_zip(tmp_path / "pets.zip", members), "pets.zip", tmp_path / "datasets")
    assert dataset.kind == "image" and dataset.source_format == "zip" and dataset.n_rows == 10
    summary = dataset.images
    assert summary is not None
    assert summary["images_per_class"] == {"cats": 5, "dogs": 5}
    assert summary["channels"] == 3  # some images are in colour
    assert summary["formats"] == {"PNG": 6, "JPEG": 1, "BMP": 1, "WEBP": 1, "GIF": 1}
    assert {u["file"] for u in summary["unreadable"]} == {"dogs/notes.txt", "dogs/truncated.png"}
    assert summary["sizes"]["min"] == [20, 10] and summary["sizes"]["max"] == [40, 30]
    assert [c["name"] for c in dataset.columns] == ["label"]
    index = pd.read_parquet(dataset.path)
    assert list(index.columns[:4]) == ["image", "source", "width", "height"]
    stored = [Image.open(dataset.path.parent / "images" / name) for name in index["image"]]
    assert {image.format for image in stored} == {"PNG"} and {image.mode for image in stored} <= {"L", "RGB"}
    sixteen_bit = stored[list(index["source"]).index("dogs/b.png")]
    assert np.asarray(sixteen_bit).max() == 40000 >> 8  # scaled to 8 bits, not clipped


def test_grayscale_archive_keeps_one_channel_and_labels_csv_allows_several_columns(tmp_path: Path) -> None:
    rows = ["filename,is_round,is_big,weight"]
    members: dict[str, bytes] = {}
    for i in range(12):
        members[f"data/pics/{i}.png"] = _image("L", (8, 8), "PNG", i * 10)
        rows.append(f"pics/{i}.png,{'yes' if i % 2 else 'no'},{i > 5},{i * 1.5}")
    members["data/labels.csv"] = "\n".join(rows).encode()
    dataset = ingest_file(_zip(tmp_path / "l.zip", members), "l.zip", tmp_path / "datasets")
    assert dataset.images is not None and dataset.images["channels"] == 1
    assert dataset.images["layout"] == "labels_csv" and "images_per_class" not in dataset.images
    types = {c["name"]: c["type"] for c in dataset.columns}
    # yes/no stays the words it was written in; True/False is boolean.
    assert types == {"is_round": "categorical", "is_big": "boolean", "weight": "numeric"}
    index = pd.read_parquet(dataset.path)
    assert index.loc[index["source"] == "data/pics/3.png", "weight"].item() == 4.5


@pytest.mark.parametrize(("members", "message"), [
    ({"a.png": b"x"}, "no readable images"),
    ({f"cats/{i}.png": _image("L", (4, 4), "PNG") for i in range(12)}, "one class folder"),
    ({"a/1.png": _image("L", (4, 4), "PNG"), "b/1.png": _image("L", (4, 4), "PNG")}, "at least 10"),
    ({f"{i}.png": _image("L", (4, 4), "PNG") for i in range(12)}, "one folder per class"),
    ({"labels.csv": b"name,label\n1.png,a\n", "1.png": _image("L", (4, 4), "PNG")}, "no 'filename' column"),
    ({"labels.csv": b"filename\n1.png\n", "1.png": _image("L", (4, 4), "PNG")}, "no label column"),
    ({"../evil/1.png": b"x"}, "'..'"),
    ({"/etc/1.png": b"x"}, "absolute path"),
])
def test_archives_that_cannot_be_datasets(tmp_path: Path, members: dict[str, bytes], message: str) -> None:
    with pytest.raises(InvalidDataset, match=message):
        ingest_file(_zip(tmp_path / "bad.zip", members), "bad.zip", tmp_path / "datasets")
    assert not any((tmp_path / "datasets").iterdir())  # nothing half-written


def test_not_a_zip_and_symlinks_are_refused(tmp_path: Path) -> None:
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"hello, I am text")
    with pytest.raises(InvalidDataset, match="not a zip"):
        ingest_file(fake, "fake.zip", tmp_path / "datasets")
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        link = zipfile.ZipInfo("cats/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(InvalidDataset, match="symbolic link"):
        ingest_file(path, "link.zip", tmp_path / "datasets")


def test_zip_bombs_are_refused_by_bytes_actually_read(tmp_path: Path) -> None:
    bomb = _zip(tmp_path / "bomb.zip", {"a/big.png": b"\0" * (20 * 1024 * 1024), "b/x.png": b"x"})
    with pytest.raises(TooLarge, match="compressed more than"):
        ingest_file(bomb, "bomb.zip", tmp_path / "datasets", UploadLimits(max_ratio=100))
    many = _zip(tmp_path / "many.zip", {f"a/{i}.png": b"x" for i in range(30)})
    with pytest.raises(TooLarge, match="30 members"):
        ingest_file(many, "many.zip", tmp_path / "datasets", UploadLimits(max_members=20))
    total = digits_archive(tmp_path / "d.zip", 40)
    with pytest.raises(TooLarge, match="inflates to more than"):
        ingest_file(total, "d.zip", tmp_path / "datasets", UploadLimits(max_total_bytes=4096))
    assert not any((tmp_path / "datasets").iterdir())


def test_pixel_bombs_are_refused_before_decoding(tmp_path: Path) -> None:
    huge = _image("L", (5000, 5000), "PNG", 0)  # 25M pixels, ~25 KB compressed
    with pytest.raises(PixelBomb, match="over the limit"):
        open_image(huge, max_pixels=1_000_000)
    archive = _zip(tmp_path / "p.zip", {"a/huge.png": huge, **{f"b/{i}.png": _image("L", (4, 4), "PNG")
                                                               for i in range(10)}})
    with pytest.raises(TooLarge, match=r"huge\.png"):
        ingest_file(archive, "p.zip", tmp_path / "datasets", UploadLimits(max_pixels=1_000_000))


def test_decode_image_converts_like_training_and_refuses_other_formats() -> None:
    rgba = _image("RGBA", (5, 3), "PNG", (10, 20, 30, 0))
    assert decode_image(rgba, 3, 100).shape == (3, 5, 3) and decode_image(rgba, 3, 100)[0, 0].tolist() == [10, 20, 30]
    gray = decode_image(rgba, 1, 100)
    assert gray.shape == (3, 5, 1) and gray.dtype == np.uint8
    tiff = io.BytesIO()
    Image.new("L", (4, 4)).save(tiff, format="TIFF")
    with pytest.raises(BadImage, match="allowed format"):
        decode_image(tiff.getvalue(), 1, 100)


def test_default_image_size_is_the_median_longer_side_within_bounds() -> None:
    assert default_image_size({"sizes": {"median": [8, 8]}}) == 32
    assert default_image_size({"sizes": {"median": [100, 60]}}) == 100
    assert default_image_size({"sizes": {"median": [640, 480]}}) == 224
