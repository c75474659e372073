"""How light the client is: a fresh virtual environment, `pip install <this repository>` (the base
install: the client and its commands, no server dependencies), then the import time of the client
and of the `automl` command, and what they pulled in.

    .venv/bin/python -m benchmarks.client_install [--runs 3] [--write-docs]

Needs the package registry (PyPI) like any install; pip's cache is left as it is, so the figures
are what a second install on a machine costs (the first one also downloads about 2 MB of wheels).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._docs import write_section

ROOT = Path(__file__).resolve().parents[1]
SERVER_MODULES = ("tensorflow", "keras", "flask", "sqlalchemy", "pandas", "numpy", "celery", "pydantic")


def one_install(folder: Path) -> dict[str, Any]:
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    started = time.perf_counter()
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
                   check=True, capture_output=True)
    install_s = time.perf_counter() - started
    probe = ("import sys, time; t = time.perf_counter(); import automl.client.cli, api.cli; "
             f"print(time.perf_counter() - t); print(','.join(m for m in {SERVER_MODULES!r} if m in sys.modules))")
    out = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True, cwd=folder).stdout
    import_s, loaded = out.splitlines()[0], out.splitlines()[1] if len(out.splitlines()) > 1 else ""
    freeze = subprocess.run([str(python), "-m", "pip", "freeze", "--exclude", "keras-automl-service"],
                            check=True, capture_output=True, text=True).stdout.split()
    size = sum(p.stat().st_size for p in (venv / "lib").rglob("*") if p.is_file())
    return {"install_s": install_s, "import_s": float(import_s), "packages": freeze,
            "site_mb": size / 2**20, "server_modules": [m for m in loaded.split(",") if m]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            runs.append(one_install(Path(folder)))
    install = [float(r["install_s"]) for r in runs]
    imports = [float(r["import_s"]) for r in runs]
    last = runs[-1]
    lines = [
        "- `pip install` of the repository into a fresh venv (the client): "
        f"median **{statistics.median(install):.1f} s** over {len(runs)} runs "
        f"(min {min(install):.1f}, max {max(install):.1f}), pip's cache warm.",
        f"- Installed besides pip: {len(last['packages'])} packages ({', '.join(last['packages'])}), "
        f"{last['site_mb']:.0f} MiB in the venv's lib/ (pip itself included).",
        f"- `import automl.client.cli, api.cli`: median **{1000 * statistics.median(imports):.0f} ms**; "
        f"server modules imported: {', '.join(last['server_modules']) or 'none'} "
        f"(checked: {', '.join(SERVER_MODULES)}).",
    ]
    body = "\n".join(lines)
    print(body)
    if args.write_docs:
        write_section(ROOT / "docs" / "benchmarks.md", "client", "Client install", body)


if __name__ == "__main__":
    main()
