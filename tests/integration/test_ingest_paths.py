"""``POST /api/ingest`` reads only below its roots, by default the knowledge-base folder the
service was started with; symbolic links out of a root are refused or skipped; employees see
titles and source URLs, never server paths (issue 20)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.integration._kb import OWNER, api_client, open_kb, settings_for

pytestmark = pytest.mark.integration
EMPLOYEE = {"X-User-Id": "emp1"}


def _wait(client, url: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 300
    while (run := client.get(url, headers=OWNER).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return run  # type: ignore[no-any-return]


def test_ingest_reads_only_below_the_knowledge_base_folder(tmp_path: Path) -> None:
    kb_dir, outside = tmp_path / "kb", tmp_path / "elsewhere"
    kb_dir.mkdir()
    outside.mkdir()
    (kb_dir / "lobby.md").write_text("# Lobby\n\nThe lobby opens at 8:30.\n")
    (outside / "secret.md").write_text("# Secret\n\nThe vault code is 4711.\n")
    (kb_dir / "linked-secret.md").symlink_to(outside / "secret.md")
    (kb_dir / "linked-folder").symlink_to(outside, target_is_directory=True)
    settings = settings_for(tmp_path / "var", docs_dir=kb_dir)  # KB_INGEST_ROOTS unset
    with open_kb(settings) as (kb, db), api_client(kb, db) as client:
        for path in (outside, Path("/proc/self"), Path("/etc"), kb_dir / "linked-folder"):
            resp = client.post("/api/ingest", json={"path": str(path)}, headers=OWNER)
            assert resp.status_code == 403, (path, resp.text)
            body = resp.json()
            assert body["error_code"] == "FORBIDDEN" and "KB_INGEST_ROOTS" in body["detail"]
        link = client.post(
            "/api/ingest", json={"path": str(kb_dir / "linked-secret.md")}, headers=OWNER
        )
        assert link.status_code == 403 and "a link to" in link.json()["detail"]

        started = client.post("/api/ingest", json={"path": str(kb_dir)}, headers=OWNER)
        assert started.status_code == 202, started.text
        run = _wait(client, started.json()["url"])
        assert run["status"] == "finished"
        # The links out of the folder were not read: only lobby.md went in.
        assert [f["path"] for f in run["files"]] == ["lobby.md"]
        asked = client.post("/api/ask", json={"question": "What is the vault code?"}).json()
        # What the employee is shown (the query and conversation ids are random hex, which
        # held "4711" once in a CI run).
        shown = {k: v for k, v in asked.items() if k not in ("query_id", "conversation_id")}
        assert asked["status"] == "escalated" and "4711" not in json.dumps(shown)

        listed = client.get("/api/documents", headers=EMPLOYEE)
        assert listed.status_code == 200 and str(tmp_path) not in listed.text
        (doc,) = listed.json()
        assert doc["title"] == "Lobby" and doc["source"] == "folder"
        assert doc["url"] == f"/api/documents/{doc['id']}/source"
        one = client.get(f"/api/documents/{doc['id']}", headers=EMPLOYEE)
        assert str(tmp_path) not in one.text
        asked = client.post("/api/ask", json={"question": "When does the lobby open?"})
        assert str(tmp_path) not in asked.text and asked.json()["citations"]
        # Content owners still see where it comes from.
        owned = client.get("/api/documents", headers=OWNER).json()
        assert owned[0]["source"] == str(kb_dir.resolve())


def test_configured_roots_replace_the_default(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "team").mkdir(parents=True)
    (shared / "team" / "a.md").write_text("# A\n\nAlpha.\n")
    settings = settings_for(tmp_path / "var", ingest_roots=[shared])
    with open_kb(settings) as (kb, db), api_client(kb, db) as client:
        ok = client.post("/api/ingest", json={"path": str(shared / "team")}, headers=OWNER)
        assert ok.status_code == 202
        assert _wait(client, ok.json()["url"])["status"] == "finished"
        default = client.post(
            "/api/ingest", json={"path": os.path.abspath("docs_corpus")}, headers=OWNER
        )
        assert default.status_code == 403
