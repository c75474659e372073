"""What a crash leaves behind (staging folders, temporary files) is swept once it is stale; what is
whole, or still being written, is never touched."""

from __future__ import annotations

import os
import time
from pathlib import Path

from automl.housekeeping import sweep_stale_files
from automl.settings import Settings


def _old(path: Path, age_s: float = 7200) -> Path:
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def _tree(settings: Settings) -> dict[str, Path]:
    settings.ensure_dirs()
    made = {
        "staged dataset": settings.datasets_dir / ".staging-abc",
        "staged model": settings.models_dir / ".staging-def",
        "export": settings.models_dir / "m1" / ".export-x1",
        "dataset": settings.datasets_dir / "abc",
        "model": settings.models_dir / "m1",
        "fresh staging": settings.models_dir / ".staging-new",
    }
    for path in made.values():
        path.mkdir(parents=True, exist_ok=True)
        (path / "file").write_text("x")
    made["upload"] = settings.tmp_dir / "upload-123"
    made["split"] = settings.jobs_dir / "j1" / ".split-xyz.npz"
    made["split"].parent.mkdir(parents=True)
    for name in ("upload", "split"):
        made[name].write_text("x")
    for name in ("staged dataset", "staged model", "export", "dataset", "model", "upload", "split"):
        _old(made[name])
    return made


def test_stale_staging_and_temporary_files_go_and_nothing_else(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", stale_files_s=3600)
    made = _tree(settings)
    removed = set(sweep_stale_files(settings))
    assert removed == {made[n] for n in ("staged dataset", "staged model", "export", "upload", "split")}
    for name in ("dataset", "model", "fresh staging"):  # whole, or still being written
        assert (made[name] / "file").exists(), name
    assert sweep_stale_files(settings) == []


def test_an_api_process_sweeps_when_it_starts(tmp_path: Path) -> None:
    from api import create_app

    settings = Settings(data_dir=tmp_path / "var")
    made = _tree(settings)
    create_app(settings)
    assert not made["staged model"].exists() and (made["model"] / "file").exists()
