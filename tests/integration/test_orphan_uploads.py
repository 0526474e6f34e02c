"""Upload files left on disk by a kill -9 are removed at the next start, and the run log says
so (issue 20)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kb.api.app import create_app
from kb.retrieval.settings import AuthSettings, EmbedderSettings, Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # server processes
ROOT = Path(__file__).resolve().parents[2]

# Uploads one document properly, then is killed (SIGKILL, nothing runs after it) once the files
# of a new upload and of a replacement are on disk and before either is indexed.
CRASHING_SERVICE = textwrap.dedent(
    """
    import io, os, signal, sys, threading
    from pathlib import Path
    from kb.db.engine import Database
    from kb.ingest.pipeline import Ingestor
    from kb.ingest.uploads import DocumentManager, FileStore, Upload
    from kb.retrieval.service import KnowledgeBase
    from kb.retrieval.settings import EmbedderSettings, Settings

    settings = Settings(data_dir=Path(sys.argv[1]), embedder=EmbedderSettings(models=["hash"]))
    db = Database(settings.db_url()); db.migrate()
    kb = KnowledgeBase.open(settings)
    files = FileStore(settings.files_dir(), settings.max_file_bytes)
    manager = DocumentManager(Ingestor(kb, db), files, threading.Lock())
    out = manager.add([Upload("kept.md", io.BytesIO(b"# Kept\\n\\nThe lobby opens at 8:30.\\n"))],
                      groups=[], title=None, created_by="owner")
    kept = out.report.files[0].document_id
    files.save(kept, 2, "kept-v2.md", io.BytesIO(b"# Kept\\n\\nNew text.\\n"))
    files.save("d_" + "0" * 20, 1, "new.md", io.BytesIO(b"# New\\n\\nNever indexed.\\n"))
    print(kept, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_kill_9_leaves_no_orphan_upload_after_the_next_start(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_SERVICE, str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr
    kept = proc.stdout.strip()
    files = tmp_path / "files"
    assert (files / kept / "2" / "kept-v2.md").is_file()
    assert (files / ("d_" + "0" * 20) / "1" / "new.md").is_file()

    settings = Settings(
        data_dir=tmp_path,
        embedder=EmbedderSettings(models=["hash"]),
        auth=AuthSettings(dev_headers=True),
    )
    with TestClient(create_app(settings)) as client:  # the next start: the real lifespan
        left = sorted(str(p.relative_to(files)) for p in files.rglob("*") if p.is_file())
        assert left == [f"{kept}/1/kept.md"]
        admin = {"X-User-Id": "admin1", "X-User-Roles": "admin"}
        runs = client.get("/api/ingest/runs", headers=admin).json()
        (recovery,) = [r for r in runs if r["created_by"] == "recovery"]
        report = client.get(f"/api/ingest/runs/{recovery['id']}", headers=admin).json()
        assert {f["path"] for f in report["files"]} == {
            f"{kept}/2/kept-v2.md",
            f"d_{'0' * 20}/1/new.md",
        }
        doc = client.get(f"/api/documents/{kept}", headers=admin).json()
        assert doc["version"] == 1 and doc["status"] == "indexed"
