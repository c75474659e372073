"""Refresh the dashboard's vendored front-end files from the npm registry (``make dashboard-vendor``).

Reads ``vendor.json``: for each package, downloads its tarball, checks it against the registry's
``integrity`` (sha512), copies the listed files into ``static/vendor`` and records their sha256
(which ``tests/unit/test_dashboard.py`` checks). To upgrade, change ``version``, ``tarball`` and
``integrity`` (``npm view uplot@X dist``) and run it. Never run by the service itself.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
MANIFEST = HERE / "vendor.json"
TARGET = HERE / "static" / "vendor"


def refresh() -> None:
    manifest = json.loads(MANIFEST.read_text())
    for name, package in manifest.items():
        with urllib.request.urlopen(package["tarball"], timeout=60) as answer:
            tarball = answer.read()
        algorithm, _, expected = package["integrity"].partition("-")
        if base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode() != expected:
            raise SystemExit(f"{name}: the tarball does not match its integrity {package['integrity']}")
        with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
            for member, local in package["files"].items():
                handle = archive.extractfile(member)
                if handle is None:
                    raise SystemExit(f"{name}: {member} is not a file in {package['tarball']}")
                data = handle.read()
                (TARGET / local).write_bytes(data)
                package["sha256"][local] = hashlib.sha256(data).hexdigest()
        print(f"{name} {package['version']}: {', '.join(package['files'].values())}")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    refresh()
