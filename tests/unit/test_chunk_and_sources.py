"""Chunking keeps provenance and never crosses sections; source walking applies metadata."""

import json

import pytest

from kb.ingest.chunk import Chunker
from kb.ingest.sources import document_id_for, walk_source
from kb.retrieval.errors import IngestError
from kb.retrieval.models import Location, ParsedDocument, Section


def _doc(*sections: Section) -> ParsedDocument:
    text = "\n\n".join(s.text for s in sections)
    return ParsedDocument(title="Guide", sections=list(sections), lang="ja", text=text)


def test_chunks_carry_provenance_and_offsets_into_the_document_text():
    first = "トナーを交換するには前面カバーを開けます。" * 30
    second = "Wi-Fi を設定するにはメニューを開きます。"
    sections = [
        Section(first, Location(heading_path=("保守", "トナー"), page=3), start=0),
        Section(second, Location(heading_path=("設定",), page=4), start=len(first) + 2),
    ]
    doc = _doc(*sections)
    chunks = Chunker(chunk_size=120, chunk_overlap=10).chunk(
        doc, document_id="d1", source_path="m.pdf", groups=("g",), version=2, doc_hash="h"
    )
    assert len(chunks) > 2
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert c.groups == ("g",) and c.version == 2 and c.lang == "ja"
        # Japanese chunks end at a sentence end, never in the middle of one.
        assert c.text.endswith("。")
    assert chunks[-1].location.page == 4 and chunks[-1].text == second
    assert all(c.location.page == 3 for c in chunks[:-1])


def test_a_split_section_keeps_the_spaces_and_line_breaks_between_sentences():
    prose = " ".join(f"Step {i} opens the front cover of the printer." for i in range(30))
    rows = "\n".join(f"Item: Part {i}; Specification: {i} mm (A4)" for i in range(40))
    text = f"{prose}\n\n{rows}"
    doc = _doc(Section(text, Location(heading_path=("Specs",), page=10), start=0))
    chunks = Chunker(chunk_size=120, chunk_overlap=10).chunk(
        doc, document_id="d1", source_path="m.pdf", groups=(), version=1, doc_hash="h"
    )
    assert len(chunks) > 4
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        # Sentences glued together ("printer.Step", "(A4)Item") would read as one.
        assert ".Step" not in c.text and ")Item" not in c.text
    table = [c for c in chunks if c.text.startswith("Item:")]
    assert table and len(table[0].text.splitlines()) > 1


def test_a_short_section_is_one_chunk_and_a_long_one_is_cut_small():
    # A short section is about one thing: its heading and its steps stay together. A long one
    # is cut into chunk_size pieces, so that a question about one of its parts finds that part.
    short = "To reset the Aster, hold the power button for ten seconds. The lamp blinks twice."
    long = " ".join(f"Tray {n} holds {n * 50} sheets of A4 paper at most." for n in range(1, 61))
    doc = _doc(
        Section(short, Location(heading_path=("Reset",)), start=0),
        Section(long, Location(heading_path=("Trays",)), start=len(short) + 2),
    )
    chunks = Chunker(chunk_size=40, chunk_overlap=5, whole_size=320).chunk(
        doc, document_id="d", source_path="g.md", groups=(), version=1, doc_hash="h"
    )
    assert chunks[0].text == short and chunks[0].location.heading_path == ("Reset",)
    trays = chunks[1:]
    assert len(trays) > 10 and all(doc.text[c.start : c.end] == c.text for c in trays)
    assert all(c.location.heading_path == ("Trays",) for c in trays)
    # whole_size 0 (or not above chunk_size) cuts every section at chunk_size.
    every = Chunker(chunk_size=10, chunk_overlap=0, whole_size=0).chunk(
        doc, document_id="d", source_path="g.md", groups=(), version=1, doc_hash="h"
    )
    assert sum(c.location.heading_path == ("Reset",) for c in every) > 1


def test_a_qa_entry_is_one_chunk_whatever_its_length():
    answer = "Yes. " * 400
    doc = _doc(Section(answer, kind="qa", question="Is it long?"))
    chunks = Chunker(chunk_size=50).chunk(
        doc, document_id="d", source_path="faq.csv", groups=(), version=1, doc_hash="h"
    )
    assert len(chunks) == 1 and chunks[0].question == "Is it long?"
    assert chunks[0].embed_text.startswith("Is it long?")


def test_folder_and_sidecar_metadata_set_groups(tmp_path):
    (tmp_path / "public.md").write_text("# Hi\n")
    internal = tmp_path / "internal"
    internal.mkdir()
    (internal / ".kbmeta.json").write_text(json.dumps({"groups": ["support-internal"]}))
    (internal / "runbook.md").write_text("# Runbook\n")
    (internal / "shared.md").write_text("# Shared\n")
    (internal / "shared.md.meta.json").write_text(json.dumps({"groups": [], "title": "Shared"}))
    (tmp_path / ".hidden.md").write_text("# no\n")
    found = {f.relpath: f for f in walk_source(tmp_path)}
    assert set(found) == {"public.md", "internal/runbook.md", "internal/shared.md"}
    assert found["public.md"].groups == ()
    assert found["internal/runbook.md"].groups == ("support-internal",)
    assert (
        found["internal/shared.md"].groups == () and found["internal/shared.md"].title == "Shared"
    )
    assert found["public.md"].document_id == document_id_for(str(tmp_path.resolve()), "public.md")


def test_bad_metadata_and_missing_folder_are_named(tmp_path):
    (tmp_path / "a.md").write_text("# A\n")
    (tmp_path / "a.md.meta.json").write_text('{"groups": "not-a-list"}')
    with pytest.raises(IngestError, match="a.md.meta.json"):
        list(walk_source(tmp_path))
    with pytest.raises(IngestError, match="no such file or folder"):
        list(walk_source(tmp_path / "missing"))
