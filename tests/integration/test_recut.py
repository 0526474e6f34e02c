"""A document indexed again in other chunks (``kb ingest --reindex`` after a change of
chunking) keeps what people confirmed about it: each confirmed pair follows its passage to the
new chunk that holds it (issue 22; ``ingest/recut.py``); ``whole_section_size`` reaches the chunker.
Real store, database and model."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from kb.db.models import MemoryEntry
from kb.ingest.pipeline import Ingestor
from kb.retrieval.settings import RetrievalSettings, Settings
from tests.integration._kb import open_kb, settings_for

QUESTION = "Which roller part does tray 45 use?"


def _settings(data_dir: Path, size: int, overlap: int) -> Settings:
    cut = RetrievalSettings(chunk_size=size, chunk_overlap=overlap)
    return settings_for(data_dir, retrieval=cut)


def test_a_confirmed_pair_follows_its_passage_into_the_new_cut(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    lines = [
        f"Tray {n} holds {n * 50} sheets and uses roller part PR-{n:03d}." for n in range(1, 61)
    ]
    (docs / "trays.md").write_text("# Trays\n\n" + " ".join(lines) + "\n", encoding="utf-8")
    data = tmp_path / "var"
    with open_kb(_settings(data, 320, 40)) as (kb, db):
        doc = Ingestor(kb, db).sync_folder(docs).files[0].document_id
        (was,) = [p.chunk for p in kb.store.document_chunks(doc) if "PR-045" in p.chunk.text][:1]
        with db.session() as s:
            s.add(
                MemoryEntry(
                    kind="pair", how="staff_link", query_id="q-1", question=QUESTION, lang="en",
                    embedder=kb.embedders[0].name, vector=kb.query_vector(QUESTION),
                    terms=sorted(set(kb.sparse.terms(QUESTION))), document_id=doc,
                    chunk_id=was.point_id, version=was.version, text_hash=was.content_hash,
                    confirmed_by="staff-1", staff=True,
                )
            )  # fmt: skip
    with open_kb(_settings(data, 60, 10)) as (kb, db):
        report = Ingestor(kb, db).sync_folder(docs, reindex=True)
        assert report.files[0].outcome == "updated"
        now = {p.chunk.point_id: p.chunk for p in kb.store.document_chunks(doc)}
        with db.session() as s:
            entry = s.scalars(select(MemoryEntry)).one()
            assert entry.state == "active" and entry.version == 2
            moved = now[entry.chunk_id or ""]
        # The new chunk holding the old passage's span; its id, hash and version are the pair's.
        assert moved.content_hash == entry.text_hash and moved.point_id != was.point_id
        assert moved.start < was.end and was.start < moved.end
        assert len(now) > 2 and len(moved.text) < len(was.text)


def test_whole_section_size_keeps_short_sections_whole_at_ingest(tmp_path: Path) -> None:
    # The setting reaches the chunker through kb ingest's path: a short section stays one chunk
    # with its heading, the long one is cut at the chunk size.
    docs = tmp_path / "docs"
    docs.mkdir()
    lines = [f"Tray {n} holds {n * 50} sheets, roller part PR-{n:03d}." for n in range(1, 61)]
    reset = (
        "Hold the power button for ten seconds. The lamp blinks twice when it has reset. "
        "Wait until the control panel shows the home screen, then sign in again with your "
        "user code. Print a configuration page to check that the network settings were kept."
    )  # about 60 tokens: more than one chunk of 40 unless the section is kept whole
    text = f"# Guide\n\n## Reset\n\n{reset}\n\n## Trays\n\n" + " ".join(lines) + "\n"
    (docs / "guide.md").write_text(text, encoding="utf-8")
    cut = RetrievalSettings(chunk_size=40, chunk_overlap=5, whole_section_size=320)
    with open_kb(settings_for(tmp_path / "var", retrieval=cut)) as (kb, db):
        doc = Ingestor(kb, db).sync_folder(docs).files[0].document_id
        chunks = [p.chunk for p in kb.store.document_chunks(doc)]
    by_heading: dict[str, list[str]] = {}
    for c in chunks:
        by_heading.setdefault(c.location.heading_path[-1], []).append(c.text)
    assert by_heading["Reset"] == [reset]
    assert len(by_heading["Trays"]) > 10
