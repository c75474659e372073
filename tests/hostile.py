"""A corpus of malicious uploads, built by the tests (nothing is downloaded): zip slip, absolute and
symlink members, zip bombs by ratio, member count and total size, pixel bombs, polyglot files,
formats outside the allowed list, and CSVs with millions of columns, giant fields, bad encodings
and formula cells. Each item says where it is sent and what the service must answer."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass

from tests.image_data import digit_images, png_bytes

# The limits the corpus is built against (small, so that the bombs stay small too).
LIMITS = {"max_archive_members": 60, "max_archive_bytes": 4_000_000, "max_compression_ratio": 50,
          "max_image_pixels": 1_000_000}
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
        Upload("empty file", "empty.csv", b"", 422, "empty"),
    ]
