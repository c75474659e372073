"""Image datasets: a zip archive of labelled images -> canonical PNG files plus an index.

Two layouts: one folder per class (``cats/001.jpg``; the label is the image's folder), or
images plus a ``labels.csv`` (``filename`` and one or more label columns: several for a
multilabel task, a numeric column for regression; file names relative to ``labels.csv``).

Every image is decoded here with Pillow, limited to the allowed formats and to a pixel
count (decompression bombs), and stored as an 8-bit PNG (grayscale, or RGB with any alpha
dropped) under a name the service chooses, so no member name ever becomes a path. The
archive itself is read with counted limits: member count, bytes actually inflated (in
total and per member) and compression ratio. Files that are not readable images are
skipped and named in the dataset's summary; an archive that breaks a limit is refused.

Nothing here imports TensorFlow: the API process ingests. Images are decoded by
``automl.preprocessing.pixels``, which serving uses for request images too.
"""

from __future__ import annotations

import io
import stat
import statistics
import struct
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from automl.datasets.limits import UploadLimits, check_field_sizes, check_header
from automl.datasets.schema import profile_columns
from automl.errors import InvalidDataset, TooLarge
from automl.preprocessing.pixels import FORMATS, BadImage, PixelBomb, is_color, open_image, to_mode

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
LABELS_FILE = "labels.csv"
FILENAME_COLUMN = "filename"
FOLDER_LABEL = "label"  # the label column of a folder-per-class archive
IMAGE_COLUMN = "image"  # the index column holding each stored image's file name
IMAGES_DIR = "images"
MIN_IMAGES = 10
MAX_REPORTED_UNREADABLE = 100
MAX_LABELS_CSV_BYTES = 64 * 1024 * 1024
INDEX_EXTRA_COLUMNS = (IMAGE_COLUMN, "source", "width", "height")


def is_zip(head: bytes) -> bool:
    return head.startswith(ZIP_MAGICS)


@dataclass(frozen=True)
class IngestedImages:
    frame: pd.DataFrame  # the index: image file, source name, size, label column(s)
    label_columns: list[str]
    summary: dict[str, Any]


def _member_name(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in path.parts:
        raise InvalidDataset(
            f"The archive member '{info.filename[:200]}' has an absolute path or '..'; archive members must "
            "use relative paths inside the archive."
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise InvalidDataset(f"The archive member '{info.filename[:200]}' is a symbolic link; links are not "
                             "accepted. Put the image files themselves in the archive.")
    return path


def _ignored(path: PurePosixPath) -> bool:
    """Folders' entries, macOS resource forks and hidden files (.DS_Store, ._name) are not data."""
    return path.parts[0] == "__MACOSX" or any(part.startswith(".") for part in path.parts)


class _Reader:
    """Reads members while counting the bytes really inflated against the limits."""

    def __init__(self, archive: zipfile.ZipFile, limits: UploadLimits) -> None:
        self.archive = archive
        self.limits = limits
        self.total = 0

    def read(self, info: zipfile.ZipInfo, limit: int | None = None) -> bytes:
        limit = limit or self.limits.max_member_bytes
        chunks, size = [], 0
        with self.archive.open(info) as handle:
            while chunk := handle.read(1 << 20):
                size += len(chunk)
                self.total += len(chunk)
                if size > limit:
                    raise TooLarge(f"The archive member '{info.filename[:200]}' inflates to more than {limit:,} "
                                   "bytes, over this service's limit per file.")
                if self.total > self.limits.max_total_bytes:
                    raise TooLarge(f"The archive inflates to more than {self.limits.max_total_bytes:,} bytes, over "
                                   "this service's limit (AUTOML_MAX_ARCHIVE_BYTES).")
                if size > 1 << 20 and size > self.limits.max_ratio * max(info.compress_size, 1):
                    raise TooLarge(f"The archive member '{info.filename[:200]}' is compressed more than "
                                   f"{self.limits.max_ratio:g} to 1, as zip bombs are; it was refused.")
                chunks.append(chunk)
        return b"".join(chunks)


_END = b"PK\x05\x06"  # end of central directory record
_END64_LOCATOR = b"PK\x06\x07"
_END64 = b"PK\x06\x06"


def declared_members(path: Path) -> int | None:
    """The number of entries the archive's end record declares (ZIP64 too), read from its last bytes
    without loading the central directory, which ``zipfile`` would hold in memory whole: a directory
    of millions of entries is a memory bomb of its own. None when no end record is found."""
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        tail_size = min(size, 65_535 + 22)  # the record, then a comment of up to 65,535 bytes
        handle.seek(size - tail_size)
        tail = handle.read(tail_size)
        at = tail.rfind(_END)
        if at < 0 or len(tail) < at + 22:
            return None
        entries = int(struct.unpack("<H", tail[at + 10:at + 12])[0])
        locator = tail.rfind(_END64_LOCATOR, 0, at)
        if entries == 0xFFFF and locator >= 0 and len(tail) >= locator + 20:
            handle.seek(int(struct.unpack("<Q", tail[locator + 8:locator + 16])[0]))
            record = handle.read(56)
            if record[:4] == _END64 and len(record) == 56:
                entries = int(struct.unpack("<Q", record[32:40])[0])
        return entries


def _open_archive(path: Path, filename: str, limits: UploadLimits) -> zipfile.ZipFile:
    declared = declared_members(path)
    if declared is not None and declared > limits.max_members:
        raise TooLarge(f"The archive declares {declared:,} members; at most {limits.max_members:,} are accepted "
                       "(AUTOML_MAX_ARCHIVE_MEMBERS).")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidDataset(f"'{filename}' is not a readable zip archive ({exc}). Upload a .zip of images.") from exc


def _members(archive: zipfile.ZipFile, limits: UploadLimits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise TooLarge(f"The archive has {len(infos):,} members; at most {limits.max_members:,} are accepted "
                       "(AUTOML_MAX_ARCHIVE_MEMBERS).")
    members = []
    for info in infos:
        path = _member_name(info)
        if info.is_dir() or _ignored(path):
            continue
        members.append((info, path))
    return members


def _labels_table(reader: _Reader, info: zipfile.ZipInfo, limits: UploadLimits) -> pd.DataFrame:
    """labels.csv, under the limits a table upload has: its size, columns (counted from the header before
    the rest is parsed), column names and cell sizes."""
    data = reader.read(info, MAX_LABELS_CSV_BYTES)
    check_header(data[:1_000_000].split(b"\n", 1)[0], "labels.csv", limits.max_columns)
    try:
        table = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", skipinitialspace=True, dtype={FILENAME_COLUMN: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InvalidDataset(f"labels.csv could not be read ({str(exc).strip()[:300]}). It needs a header row "
                             f"'{FILENAME_COLUMN},<label column>...' and one row per image, in UTF-8.") from exc
    check_field_sizes(table, "labels.csv", limits.max_field_chars)
    table.columns = pd.Index([str(c).strip() for c in table.columns])
    if FILENAME_COLUMN not in table.columns:
        raise InvalidDataset(f"labels.csv has no '{FILENAME_COLUMN}' column; its header must start with "
                             f"'{FILENAME_COLUMN}' followed by the label column(s). Found: {list(table.columns)[:20]}.")
    labels = [c for c in table.columns if c != FILENAME_COLUMN]
    if not labels:
        raise InvalidDataset("labels.csv has no label column; add at least one column next to 'filename'.")
    if table.columns.duplicated().any():
        raise InvalidDataset("labels.csv repeats a column name; column names must be unique.")
    if set(labels) & set(INDEX_EXTRA_COLUMNS):
        clash = sorted(set(labels) & set(INDEX_EXTRA_COLUMNS))
        raise InvalidDataset(f"labels.csv uses reserved column names {clash}; rename them.")
    table[FILENAME_COLUMN] = table[FILENAME_COLUMN].map(lambda v: "" if pd.isna(v) else str(v).strip())
    repeated = table[FILENAME_COLUMN][table[FILENAME_COLUMN].duplicated()].head(5).tolist()
    if repeated:
        raise InvalidDataset(f"labels.csv lists these files more than once: {repeated}. One row per image.")
    return table


def _layout(members: list[tuple[zipfile.ZipInfo, PurePosixPath]]) -> tuple[str, zipfile.ZipInfo | None, PurePosixPath]:
    """``labels_csv`` (with the labels file and its folder) or ``folders``."""
    candidates = [(info, path) for info, path in members if path.name.lower() == LABELS_FILE]
    if candidates:
        info, path = min(candidates, key=lambda c: len(c[1].parts))
        return "labels_csv", info, path.parent
    return "folders", None, PurePosixPath(".")


def ingest_archive(path: Path, filename: str, target_dir: Path, limits: UploadLimits) -> IngestedImages:
    """Read the archive at ``path`` and write its images as PNG files into ``target_dir/images``.

    Raises ``InvalidDataset`` or ``TooLarge`` with a message that says what to fix; the
    caller removes ``target_dir`` then.
    """
    with _open_archive(path, filename, limits) as archive:
        members = _members(archive, limits)
        reader = _Reader(archive, limits)
        layout, labels_info, root = _layout(members)
        table = _labels_table(reader, labels_info, limits) if labels_info is not None else None
        label_of: dict[str, Any] = {}
        if table is not None:
            label_of = {name: i for i, name in enumerate(table[FILENAME_COLUMN])}
        images_dir = target_dir / IMAGES_DIR
        images_dir.mkdir(parents=True)
        rows: list[dict[str, Any]] = []
        unreadable: list[dict[str, str]] = []
        formats: Counter[str] = Counter()
        modes: Counter[str] = Counter()
        colored = 0
        at_root = 0
        for info, member in members:
            if labels_info is not None and info is labels_info:
                continue
            if layout == "labels_csv":
                try:
                    relative = str(member.relative_to(root))
                except ValueError:
                    relative = str(member)
                row = label_of.get(relative)
                if row is None or table is None:
                    unreadable.append({"file": str(member), "error": "not listed in labels.csv"})
                    continue
                labels: dict[str, Any] = {c: table.iloc[row][c] for c in table.columns if c != FILENAME_COLUMN}
                label_of.pop(relative)
            else:
                if len(member.parts) < 2:
                    at_root += 1
                    unreadable.append({"file": str(member), "error": "not in a class folder"})
                    continue
                labels = {FOLDER_LABEL: member.parent.name}
            data = reader.read(info)
            try:
                image = open_image(data, limits.max_pixels)
            except PixelBomb as exc:
                raise TooLarge(f"The image '{member}' is refused: {exc}.") from exc
            except BadImage as exc:
                unreadable.append({"file": str(member), "error": str(exc)})
                continue
            color = is_color(image)
            colored += color
            formats[str(image.format)] += 1
            modes[image.mode] += 1
            stored = f"{len(rows):07d}.png"
            to_mode(image, 3 if color else 1).save(images_dir / stored, format="PNG", compress_level=1)
            rows.append({IMAGE_COLUMN: stored, "source": str(member)[:1000], "width": image.width,
                         "height": image.height, **labels})
        for missing in list(label_of)[:MAX_REPORTED_UNREADABLE]:
            unreadable.append({"file": missing, "error": "listed in labels.csv but not in the archive"})
    label_columns = [FOLDER_LABEL] if table is None else [c for c in table.columns if c != FILENAME_COLUMN]
    if not rows:
        hint = ("put the images in one folder per class (cats/001.jpg), or add a labels.csv"
                if layout == "folders" and at_root else f"allowed formats are {', '.join(FORMATS)}")
        raise InvalidDataset(f"'{filename}' holds no readable images; {hint}.",
                             errors={"unreadable": unreadable[:MAX_REPORTED_UNREADABLE]})
    frame = pd.DataFrame(rows)
    if len(frame) < MIN_IMAGES:
        raise InvalidDataset(f"'{filename}' has {len(frame)} readable images; at least {MIN_IMAGES} are needed "
                             "to train and test a model.")
    if layout == "folders" and frame[FOLDER_LABEL].nunique() < 2:
        raise InvalidDataset(
            f"'{filename}' has one class folder ('{frame[FOLDER_LABEL].iloc[0]}'); a classifier needs at least two. "
            "Put each class's images in its own folder (cats/..., dogs/...)."
        )
    return IngestedImages(frame=frame, label_columns=label_columns,
                          summary=_summary(frame, layout, label_columns, 3 if colored else 1, formats, modes,
                                           unreadable))


def _summary(frame: pd.DataFrame, layout: str, label_columns: list[str], channels: int, formats: Counter[str],
             modes: Counter[str], unreadable: list[dict[str, str]]) -> dict[str, Any]:
    sizes = Counter(zip(frame["width"], frame["height"], strict=True))
    summary: dict[str, Any] = {
        "layout": layout,
        "n_images": len(frame),
        "label_columns": label_columns,
        "channels": channels,
        "formats": dict(formats.most_common()),
        "modes": dict(modes.most_common()),
        "sizes": {
            "distinct": len(sizes),
            "min": [int(frame["width"].min()), int(frame["height"].min())],
            "max": [int(frame["width"].max()), int(frame["height"].max())],
            "median": [int(statistics.median(frame["width"])), int(statistics.median(frame["height"]))],
            "most_common": [{"size": [int(w), int(h)], "count": n} for (w, h), n in sizes.most_common(10)],
        },
        "n_unreadable": len(unreadable),
        "unreadable": unreadable[:MAX_REPORTED_UNREADABLE],
    }
    if len(label_columns) == 1:
        counts = frame[label_columns[0]].astype("object").value_counts(dropna=True)
        if len(counts) <= 1000:
            summary["images_per_class"] = {str(k): int(v) for k, v in counts.items()}
    return summary


def default_image_size(summary: dict[str, Any]) -> int:
    """The side length images are resized to when a job does not say: the median longer side,
    kept between 32 and 224 pixels (small enough to train on a CPU, big enough for a backbone)."""
    width, height = summary["sizes"]["median"]
    return int(min(max(max(width, height), 32), 224))


def label_profile(frame: pd.DataFrame, label_columns: list[str]) -> list[dict[str, Any]]:
    return profile_columns(frame[label_columns])
