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
        "from automl.store import repository\n"
        "key = new_key()\n"
        "with app.extensions['automl'].store.session() as session:\n"
        "    repository.add_key(session, key.key_id, key.digest, 'default', True, None)\n"
        "client = app.test_client()\n"
        "client.environ_base['HTTP_AUTHORIZATION'] = 'Bearer ' + key.secret\n"
        "assert client.get('/api/v1/openapi.json').status_code == 200\n"
        "assert client.get('/api/v1/datasets').status_code == 200\n"
        "loaded = [m for m in ('tensorflow', 'keras', 'keras_tuner') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
