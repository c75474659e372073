"""The architecture's boundary: the API process does not load TensorFlow until it predicts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_api_and_tasks_import_without_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from automl.settings import Settings\n"
        "from api import create_app\n"
        "import tasks.search, tasks.worker\n"
        f"app = create_app(Settings(data_dir='{tmp_path}'))\n"
        "from automl.access import new_key\n"
        "from automl.store import api_keys\n"
        "key = new_key()\n"
        "with app.extensions['automl'].store.session() as session:\n"
        "    api_keys.add_key(session, key.key_id, key.digest, 'default', 'admin', None)\n"
        "client = app.test_client()\n"
        "client.environ_base['HTTP_AUTHORIZATION'] = 'Bearer ' + key.secret\n"
        "assert client.get('/api/v1/openapi.json').status_code == 200\n"
        "assert client.get('/api/v1/datasets').status_code == 200\n"
        "loaded = [m for m in ('tensorflow', 'keras', 'keras_tuner') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_import_cycles_between_modules_of_the_service() -> None:
    """Imports (lazy ones inside functions too) form no cycle: each module can be read, and changed,
    after the ones it imports (api.auth and api.services used to import each other)."""
    import ast

    root = Path(__file__).resolve().parents[2]
    graph: dict[str, set[str]] = {}
    for package in ("api", "automl", "tasks"):
        for path in (root / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            imported = set()
            for node in ast.walk(ast.parse(path.read_text())):  # lazy imports inside functions too
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module)
                elif isinstance(node, ast.Import):
                    imported.update(alias.name for alias in node.names)
            graph[name] = {m for m in imported if m.split(".")[0] in ("api", "automl", "tasks")}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return [*path, nxt]
                if nxt not in path and len(path) < 12:
                    stack.append((nxt, [*path, nxt]))
        return None

    cycles = [c for c in (cycle_from(m) for m in graph) if c]
    assert not cycles, cycles[:3]


def test_every_integration_module_carries_the_integration_marker() -> None:
    """``-m "not integration"`` must leave out every test that needs the real Redis, PostgreSQL and workers."""
    folder = Path(__file__).resolve().parents[1] / "integration"
    unmarked = [path.name for path in sorted(folder.glob("test_*.py"))
                if "pytestmark = pytest.mark.integration" not in path.read_text()]
    assert unmarked == []
