"""Crash safety (issue 5): `kb ingest` killed with SIGKILL mid-run leaves every document
searchable in one complete version, and the next run finishes the job with no duplicate or
orphan points. Plus the states a kill can leave between the three writes of a replacement
(upsert new points, delete old points, update the catalog), each repaired by the next run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kb.db.models import DocumentVersion, IngestRun
from kb.ingest.parse import parse_file
from kb.ingest.pipeline import Ingestor, IngestReport, file_hash
from kb.retrieval.models import AccessFilter
from kb.retrieval.versions import current_versions
from tests.integration._kb import ROOT, catalog, open_kb, point_hashes, settings_for
from tests.integration.conftest import EMBED_CACHE

pytestmark = pytest.mark.integration

PUBLIC = AccessFilter()
N_FILES = 12


def _doc(i: int, token: str) -> str:
    return (
        f"# Part {i} handling note\n\n## Storage\n\n"
        + f"Part number KX-{i:03d} is stored in bay {i % 7} of the {token} warehouse. " * 3
        + f"\n\n## Shipping\n\nShip KX-{i:03d} in box size {i % 5} with {token} padding. " * 3
    )


def _kb_ingest(folder: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kb.cli.main", "ingest", str(folder)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _count(db_path: Path, sql: str) -> int:
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(db_path, timeout=1) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_sigkill_mid_run_keeps_one_version_searchable_and_the_next_run_completes(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(N_FILES):
        (docs / f"part_{i:02d}.md").write_text(_doc(i, "north"), encoding="utf-8")
    data = tmp_path / "var"
    base_env = {
        **os.environ,
        "KB_DATA_DIR": str(data),
        "KB_EMBEDDING_CACHE": str(EMBED_CACHE),
        "KB_EMBEDDER__BATCH_SIZE": "1",
    }
    first = _kb_ingest(docs, base_env)
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out.decode()

    # Version 2 of every file, with text no cache has seen, embedded one chunk at a time so
    # that the run is long enough to be killed in the middle.
    token = uuid.uuid4().hex[:8]
    for i in range(N_FILES):
        (docs / f"part_{i:02d}.md").write_text(_doc(i, f"south{token}"), encoding="utf-8")
    env = {**base_env, "KB_EMBEDDING_CACHE": str(tmp_path / "fresh-cache.sqlite3")}
    db_path = data / "kb.sqlite3"
    victim = _kb_ingest(docs, env)
    deadline = time.monotonic() + 300
    while _count(db_path, "SELECT count(*) FROM document_versions WHERE version = 2") < 3:
        assert victim.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL

    with open_kb(settings_for(data)) as (kb, db):
        records = catalog(db)
        assert len(records) == N_FILES
        done = [r for r in records.values() if r.version == 2]
        assert 3 <= len(done) < N_FILES  # killed mid-run
        with db.session() as s:
            versions = {
                (v.document_id, v.hash): v.chunk_count for v in s.query(DocumentVersion).all()
            }
        for rec in records.values():
            assert rec.status == "indexed"
            # What searchers get of the document: one version, complete, with the catalog's
            # chunk count for that version's hash.
            shown = current_versions(kb.store.document_chunks(rec.id))
            hashes = {p.chunk.doc_hash for p in shown}
            assert len(hashes) == 1, rec.source_path
            (shown_hash,) = hashes
            if shown_hash == rec.hash:
                assert len(shown) == rec.chunk_count
            else:  # killed after the old points were deleted, before the catalog update
                assert rec.version == 1 and (rec.id, shown_hash) not in versions
            i = int(rec.source_path[5:7])
            hits, _ = kb.search(f"Where is part KX-{i:03d} stored?", acl=PUBLIC)
            assert rec.id in {h.chunk.document_id for h in hits}, rec.source_path
        with db.session() as s:
            (run,) = s.query(IngestRun).filter(IngestRun.status != "finished").all()
            assert run.status == "running"  # as the killed process left it

    again = _kb_ingest(docs, {**env, "KB_EMBEDDER__BATCH_SIZE": "16"})
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out.decode()
    summary = out.decode().strip().splitlines()[-1]
    with open_kb(settings_for(data)) as (kb, db):
        records = catalog(db)
        assert len(records) == N_FILES
        updated = sum(1 for r in records.values() if r.version == 2)
        assert updated == N_FILES
        assert f"{N_FILES - len(done)} updated, {len(done)} unchanged, 0 deleted, 0 failed" in (
            summary
        ), summary
        for rec in records.values():
            # Exactly the catalog's version in the store: no duplicates, no orphans.
            assert point_hashes(kb, rec.id) == {rec.hash: rec.chunk_count}, rec.source_path
            assert rec.hash == file_hash((docs / rec.source_path).read_bytes())
        assert kb.store.count() == sum(r.chunk_count for r in records.values())
        with db.session() as s:
            statuses = {r.status for r in s.query(IngestRun).all()}
        assert statuses == {"finished", "interrupted"}


def _simulate_killed_run(db, source: str) -> None:
    """Record a run as a killed process leaves it: status running, owner pid gone."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with db.session() as s:
        s.add(
            IngestRun(
                id=str(uuid.uuid4()),
                source=source,
                status="running",
                report={"owner": {"host": os.uname().nodename, "pid": dead.pid}},
            )
        )


def _half_write(ingestor: Ingestor, path: Path, doc_id: str, version: int, share: float) -> str:
    """The first writes of a replacement, as if the process died right after them."""
    parsed = parse_file(path, max_bytes=10**7)
    new_hash = file_hash(path.read_bytes())
    chunks = ingestor.indexer.chunker.chunk(
        parsed,
        document_id=doc_id,
        source_path=path.name,
        groups=(),
        version=version,
        doc_hash=new_hash,
    )
    embedded = ingestor.indexer.embed(chunks, IngestReport("t", "t"))
    ingestor.kb.store.upsert(embedded[: max(1, int(len(embedded) * share))])
    return new_hash


def test_each_kill_point_of_a_replacement_is_repaired_by_the_next_run(tmp_path):
    import socket

    assert socket.gethostname() == os.uname().nodename
    docs = tmp_path / "docs"
    docs.mkdir()
    names = ["reverted.md", "half.md", "deleted_old.md", "gone.md", "new.md"]
    for i, name in enumerate(names[:4]):
        (docs / name).write_text(_doc(i, "east"), encoding="utf-8")
    with open_kb(settings_for(tmp_path / "var")) as (kb, db):
        ingestor = Ingestor(kb, db)
        ids = {f.path: f.document_id for f in ingestor.sync_folder(docs).files}
        old = {n: catalog(db)[ids[n]].hash for n in ids}

        # 1. killed mid-upsert, then the file was reverted: the half version is an orphan.
        v2 = docs / "reverted.md"
        v2.write_text(_doc(0, "west"), encoding="utf-8")
        orphan = _half_write(ingestor, v2, ids["reverted.md"], 2, 0.5)
        v2.write_text(_doc(0, "east"), encoding="utf-8")
        # 2. killed mid-upsert, file still changed: the next run re-writes and commits it.
        (docs / "half.md").write_text(_doc(1, "west"), encoding="utf-8")
        _half_write(ingestor, docs / "half.md", ids["half.md"], 2, 0.5)
        # 3. killed after the old points were deleted, before the catalog update.
        (docs / "deleted_old.md").write_text(_doc(2, "west"), encoding="utf-8")
        h3 = _half_write(ingestor, docs / "deleted_old.md", ids["deleted_old.md"], 2, 1.0)
        kb.store.delete_document(ids["deleted_old.md"], keep_hash=h3)
        # 4. killed mid-upsert, and the file was removed before the next run.
        (docs / "gone.md").write_text(_doc(3, "west"), encoding="utf-8")
        _half_write(ingestor, docs / "gone.md", ids["gone.md"], 2, 0.5)
        (docs / "gone.md").unlink()
        _simulate_killed_run(db, str(docs.resolve()))

        # Meanwhile searchers see one complete version of each document.
        for name in ("reverted.md", "half.md", "gone.md"):
            shown = current_versions(kb.store.document_chunks(ids[name]))
            assert {p.chunk.doc_hash for p in shown} == {old[name]}

        (docs / "new.md").write_text(_doc(4, "east"), encoding="utf-8")
        report = ingestor.sync_folder(docs)
        outcome = {f.path: f.outcome for f in report.files}
        assert outcome == {
            "reverted.md": "unchanged",
            "half.md": "updated",
            "deleted_old.md": "updated",
            "gone.md": "deleted",
            "new.md": "added",
        }
        records = catalog(db)
        for rec in records.values():
            assert point_hashes(kb, rec.id) == {rec.hash: rec.chunk_count}, rec.source_path
        assert orphan not in point_hashes(kb, ids["reverted.md"])
        assert kb.store.count(ids["gone.md"]) == 0
        assert records[ids["deleted_old.md"]].version == 3  # ranks above what was left
        assert kb.store.count() == sum(r.chunk_count for r in records.values())
