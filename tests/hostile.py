"""A corpus of malicious uploads, built by the tests (nothing is downloaded): zip slip, absolute and
symlink members, zip bombs by ratio, member count and total size, pixel bombs, polyglot files,
formats outside the allowed list, CSVs with millions of columns, giant fields, bad encodings and
formula cells, Parquet files that inflate past the limits, zips that declare millions of members and
labels.csv files as wide or as long-celled as a hostile table. Each item says where it is sent and
what the service must answer."""

from __future__ import annotations

import io
import os
import random
import stat
import string
import struct
import zipfile
import zlib
from dataclasses import dataclass

from tests.image_data import digit_images, png_bytes

# The limits the corpus is built against (small, so that the bombs stay small too).
LIMITS = {"max_archive_members": 60, "max_archive_bytes": 4_000_000, "max_compression_ratio": 50,
          "max_image_pixels": 1_000_000, "max_rows": 100_000, "max_table_bytes": 2_000_000}
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n0 0 moveto 8 8 lineto stroke\nshowpage\n"


@dataclass(frozen=True)
class Upload:
    name: str
    filename: str
    content: bytes
    status: int  # what the service must answer
    needle: str  # and a phrase its message must hold


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (with almost no pixel data behind it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def _zip(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED,
         symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def class_folders(count: int = 12, extra: list[tuple[str, bytes]] | None = None) -> list[tuple[str, bytes]]:
    images, labels = digit_images(count)
    members = [(f"{label}/{i}.png", png_bytes(image)) for i, (image, label) in enumerate(zip(images, labels,
                                                                                             strict=True))]
    return members + (extra or [])


POLYGLOT_PAYLOAD = b"<script>alert(document.cookie)</script>"


def polyglot_png() -> bytes:
    """A real PNG with HTML and a zip archive appended: image viewers show it, browsers may run it."""
    return png_bytes(digit_images(1)[0][0]) + POLYGLOT_PAYLOAD + _zip([("x.txt", b"inner")])


def forged_member_count(archive: bytes, count: int) -> bytes:
    """``archive`` with its end record claiming ``count`` members (a ZIP64 record when over 65,535)."""
    at = archive.rfind(b"PK\x05\x06")
    if count < 0xFFFF:
        return archive[:at + 8] + struct.pack("<HH", count, count) + archive[at + 12:]
    directory_size, directory_offset = struct.unpack("<II", archive[at + 12:at + 20])
    zip64 = (b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, count, count, directory_size,
                                           directory_offset))
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, at, 1)
    end = archive[at:at + 8] + struct.pack("<HH", 0xFFFF, 0xFFFF) + archive[at + 12:]
    return archive[:at] + zip64 + locator + end


def parquet_bytes(rows: int, columns: int = 2) -> bytes:
    """A Parquet table of ``rows`` rows of zeros: a few KB on disk, rows x columns x 8 bytes inflated."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({f"c{i}": pa.array([0] * rows, type=pa.int64()) for i in range(columns)})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def labels_archive(header: str, row: str) -> bytes:
    """Twelve digit images with a labels.csv of ``header`` and, for each image, ``row`` after its name."""
    images = [(f"img{i}.png", png_bytes(image)) for i, image in enumerate(digit_images(12)[0])]
    labels = header + "\n" + "".join(f"img{i}.png,{row}\n" for i in range(12))
    return _zip([*images, ("labels.csv", labels.encode())])


def uploads() -> list[Upload]:
    one_png = png_bytes(digit_images(1)[0][0])
    million_columns = ",".join(f"c{i}" for i in range(1_000_000)).encode() + b"\n" + b"1," * 999_999 + b"1\n"
    return [
        Upload("zip slip", "slip.zip", _zip(class_folders(extra=[("../../evil.png", one_png)])), 422, "'..'"),
        Upload("absolute member", "abs.zip", _zip(class_folders(extra=[("/tmp/evil.png", one_png)])), 422,
               "absolute path"),
        Upload("symlink member", "link.zip", _zip(class_folders(extra=[("0/link.png", b"/etc/passwd")]),
                                                  symlinks=("0/link.png",)), 422, "symbolic link"),
        Upload("too many members", "many.zip", _zip(class_folders(70)), 413, "AUTOML_MAX_ARCHIVE_MEMBERS"),
        Upload("zip bomb by ratio", "ratio.zip", _zip([("0/a.png", b"\x00" * 2_000_000), *class_folders()]), 413,
               "zip bombs"),
        Upload("zip bomb by total size", "total.zip",
               _zip([*[(f"{i % 2}/big{i}.png", os.urandom(1_200_000)) for i in range(4)], *class_folders()],
                    zipfile.ZIP_STORED), 413, "AUTOML_MAX_ARCHIVE_BYTES"),
        Upload("pixel bomb", "pixels.zip", _zip(class_folders(extra=[("1/bomb.png", png_header(30_000, 30_000))])),
               413, "pixels"),
        Upload("PNG + zip polyglot", "poly.zip", polyglot_png(), 422, "not a zip archive"),
        Upload("PNG + zip polyglot as CSV", "poly.csv", polyglot_png(), 422, "binary"),
        Upload("only disallowed formats", "eps.zip", _zip([(f"{i % 2}/{i}.png", EPS) for i in range(12)]), 422,
               "readable images"),
        Upload("a million columns", "wide.csv", million_columns, 422, "at most 2000"),
        Upload("a giant field", "field.csv", b"a,b\n" + b"1,x\n" * 20 + b"2," + b"y" * 200_000 + b"\n", 422,
               "AUTOML_MAX_FIELD_CHARS"),
        Upload("a giant column name", "name.csv", b"a," + b"n" * 300 + b"\n1,2\n3,4\n", 422, "column name"),
        Upload("invalid UTF-8 in a row", "latin1.csv", b"a,b\n" + b"1,x\n" * 50 + b"2,caf\xe9\n", 422, "UTF-8"),
        Upload("UTF-16", "utf16.csv", "a,b\n1,2\n3,4\n".encode("utf-16"), 422, "UTF-8"),
        Upload("corrupt Parquet", "bad.parquet", b"PAR1" + os.urandom(200) + b"PAR1", 422, "Parquet"),
        Upload("Parquet bomb by rows", "rows.parquet", parquet_bytes(150_000), 413, "AUTOML_MAX_ROWS"),
        Upload("Parquet bomb by size", "size.parquet", parquet_bytes(90_000, 4), 413, "AUTOML_MAX_TABLE_BYTES"),
        Upload("a zip declaring a million members", "declared.zip",
               forged_member_count(_zip(class_folders()), 1_000_000), 413, "declares 1,000,000 members"),
        Upload("labels.csv with too many columns", "wide-labels.zip",
               labels_archive("filename," + ",".join(f"l{i}" for i in range(2500)), ",".join("a" * 2500)), 422,
               "at most 2000"),
        Upload("labels.csv with a giant cell", "cell-labels.zip",
               labels_archive("filename,label", "".join(random.Random(0).choices(string.ascii_letters, k=200_000))),
               422, "AUTOML_MAX_FIELD_CHARS"),
        Upload("empty file", "empty.csv", b"", 422, "empty"),
    ]
