"""One write path into the store (issue 26): a staff answer written while an ingestion run is
under way survives it, and the run survives the answer. Real store, real database.

Before issue 26 staff answers wrote points without the lock ingestion runs hold: a run
re-encoding the terms of every document (after an analyzer upgrade) read a staff answer's
points, the answer was edited meanwhile, and the run wrote the old version's points back,
beside the new ones.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kb.db.engine import Database
from kb.db.models import DocumentRecord, QueueItem
from kb.ingest.pipeline import Ingestor
from kb.retrieval.service import KnowledgeBase
from kb.services import staff_answers
from kb.services.ask import answer_question
from kb.services.identity import Identity
from tests.integration._kb import FIXTURES, catalog, open_kb, point_hashes, settings_for

EMPLOYEE = Identity("emp1", groups=(), roles=("employee",), department=None)
SUPPORT = Identity("support1", groups=(), roles=("support",), department=None)
WAIT_S = 3.0
"""How long the run pauses for the other writer: it finishes well within this when nothing
holds it back, and waits it out when the write lock does."""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[KnowledgeBase, Database, Path, int]]:
    """A folder of two documents, synced; an escalated question's group."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("printer_guide.md", "release_notes.txt"):
        shutil.copy(FIXTURES / name, folder / name)
    with open_kb(settings_for(tmp_path / "data")) as (kb, db):
        Ingestor(kb, db).sync_folder(folder)
        asked = answer_question(
            kb, db, EMPLOYEE, "How do I calibrate the flux capacitor of the zeppelin?", "en"
        )
        assert asked.status == "escalated"
        with db.session() as s:
            group_id = s.execute(
                select(QueueItem.group_id).where(QueueItem.query_id == asked.query_id)
            ).scalar_one()
        yield kb, db, folder, group_id


def _publish(kb: KnowledgeBase, db: Database, group_id: int, answer: str) -> dict[str, Any]:
    return staff_answers.publish(
        kb, db, group_id, SUPPORT.access, answer=answer, user_id=SUPPORT.user_id
    )


def _one_version(kb: KnowledgeBase, db: Database, document_id: str) -> str:
    """The document's points are all of the catalog's version; :returns: their text."""
    rec = catalog(db)[document_id]
    assert point_hashes(kb, document_id) == {rec.hash: rec.chunk_count}
    return " ".join(p.chunk.text for p in kb.store.document_chunks(document_id))


def test_a_staff_answer_published_during_a_sync_survives_it(world):
    kb, db, folder, group_id = world
    (folder / "printer_guide.md").write_text("# Printer\n\nThe tray holds 250 sheets.\n")
    published: dict[str, Any] = {}
    done = threading.Event()

    def publish() -> None:
        published.update(_publish(kb, db, group_id, "Reverse the polarity of the warp coil."))
        done.set()

    def progress(_name: str, i: int, _total: int) -> None:
        if i == 1 and not done.is_set():  # half-way through the run
            threading.Thread(target=publish).start()
            assert done.wait(WAIT_S * 10)

    report = Ingestor(kb, db, progress=progress).sync_folder(folder)

    assert report.count("failed") == 0 and report.count("updated") == 1
    text = _one_version(kb, db, published["document_id"])
    assert "warp coil" in text
    for document_id, rec in catalog(db).items():
        assert rec.status == "indexed"
        _one_version(kb, db, document_id)
    asked = answer_question(kb, db, EMPLOYEE, "how to fix the warp coil polarity", "en")
    assert published["document_id"] in {c.document_id for c in asked.citations}


def test_a_staff_answer_edited_while_a_run_rewrites_its_terms_keeps_one_version(world):
    kb, db, folder, group_id = world
    document_id = _publish(kb, db, group_id, "Reverse the polarity of the warp coil.")[
        "document_id"
    ]
    # An older term analyzer encoded it: the next run re-encodes its terms first.
    with db.session() as s:
        rec = s.get(DocumentRecord, document_id)
        assert rec is not None
        rec.analyzer = "older"
    edited = threading.Event()
    started = threading.Event()
    read_chunks = kb.store.document_chunks

    def edit() -> None:
        staff_answers.edit(
            kb,
            db,
            group_id,
            SUPPORT.access,
            answer="Replace the dilithium crystal instead.",
            user_id=SUPPORT.user_id,
        )
        edited.set()

    def document_chunks(doc_id: str) -> Any:
        chunks = read_chunks(doc_id)
        if doc_id == document_id and not started.is_set():
            # The run has read the answer's points: the support agent saves an edit now (once:
            # the edit reads the answer's points too). With the write lock the edit waits for
            # the run's rewrite; without it, it lands first.
            started.set()
            threading.Thread(target=edit).start()
            edited.wait(WAIT_S)
        return chunks

    kb.store.document_chunks = document_chunks  # type: ignore[method-assign]
    try:
        report = Ingestor(kb, db).sync_folder(folder)
    finally:
        kb.store.document_chunks = read_chunks  # type: ignore[method-assign]
    assert edited.wait(WAIT_S * 10)

    assert report.terms_refreshed == 1 and report.count("failed") == 0
    text = _one_version(kb, db, document_id)
    assert "dilithium" in text and "warp coil" not in text
    assert catalog(db)[document_id].version == 2
