"""Files on disk: sweeping what a crash leaves behind (staging folders and temporary files older than
``AUTOML_STALE_FILES_S``), and measuring what a folder holds (quotas, the pinned-model budget).

Uploads, saved models and job splits are written under staging names and renamed when whole, and
request bodies are staged in ``tmp/``; a process killed midway leaves those behind. Every API
process sweeps them when it starts, and each worker's reaper every ``SWEEP_EVERY_S``. Only these
names are touched, and only once they are older than the threshold, so a write in progress (it
keeps its files fresh) is never removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from automl.settings import Settings

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 600.0


def _candidates(settings: Settings) -> list[Path]:
    found: list[Path] = []
    for root, pattern in ((settings.datasets_dir, ".staging-*"), (settings.models_dir, ".staging-*"),
                          (settings.models_dir, "*/.export-*"), (settings.jobs_dir, "*/.split-*"),
                          (settings.tmp_dir, "*")):
        if root.is_dir():
            found.extend(root.glob(pattern))
    return found


def sweep_stale_files(settings: Settings, now: float | None = None) -> list[Path]:
    """Remove the staging folders and temporary files older than ``settings.stale_files_s``; what went."""
    cutoff = (now if now is not None else time.time()) - settings.stale_files_s
    removed = []
    for path in _candidates(settings):
        try:
            if path.lstat().st_mtime >= cutoff:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:  # another process swept it first
            continue
        except OSError as exc:
            log.warning("could not remove stale %s: %s", path, exc)
            continue
        removed.append(path)
    if removed:
        log.info("swept %d stale staging or temporary file(s)", len(removed))
    return removed


def folder_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (a file: its size); links are not followed."""
    try:
        if not path.is_dir():
            return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # removed while counting
                continue
    return total
