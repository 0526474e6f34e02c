"""Sync semantics (issue 5): add, replace, skip by hash, delete, regroup, on every format; a
replacement is atomic for searchers; `kb ingest` hands its run to a running service."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time

import pytest
import uvicorn
from click.testing import CliRunner
from sqlalchemy import select

from kb.api.app import create_app
from kb.cli.main import main
from kb.db.models import DocumentRecord, DocumentVersion
from kb.ingest.pipeline import Ingestor
from kb.retrieval.models import AccessFilter
from kb.retrieval.sparse import ANALYZER_VERSION, BM25Encoder, Kind, term_id
from kb.retrieval.versions import current_versions
from tests.fixtures.facts import FACTS
from tests.integration._kb import FIXTURES, catalog, open_kb, point_hashes, settings_for
from tests.integration.conftest import EMBED_CACHE
from tests.serving import serving

pytestmark = pytest.mark.integration

PUBLIC = AccessFilter()


def _manual(sections: int, changed: int | None = None) -> str:
    parts = ["# Zephyr ZX-9 service manual\n"]
    for i in range(sections):
        body = (
            f"Procedure {i}: loosen screw S{i} on panel P{i}, lift the cover, clean the "
            f"roller R{i} with a dry cloth and refit it. Torque for S{i} is {i + 2} Nm. "
        ) * 4
        if i == changed:
            body += "Revised: wear gloves because the roller may be hot after printing. "
        parts.append(f"## Section {i}\n\n{body}\n")
    return "\n".join(parts)


@pytest.mark.slow
def test_sync_every_format_add_skip_update_delete_regroup(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(FIXTURES, docs)
    (docs / "manual.md").write_text(_manual(12), encoding="utf-8")
    with open_kb(settings_for(tmp_path / "var")) as (kb, db):
        ingestor = Ingestor(kb, db)
        first = ingestor.sync_folder(docs)
        outcome = {f.path: f for f in first.files}
        assert {n for n, f in outcome.items() if f.outcome == "added"} == {*FACTS, "manual.md"}
        ids = {f.path: f.document_id for f in first.files}
        for name, fact in FACTS.items():  # every format searchable by its fact
            hits, _ = kb.search(fact, acl=AccessFilter(("it", "support")))
            assert ids[name] in {h.chunk.document_id for h in hits}, name

        again = ingestor.sync_folder(docs)
        assert again.count("unchanged") == len(FACTS) + 1 and again.embedded == 0
        assert {f.outcome for f in again.files} == {"unchanged"}

        # One changed section of a 12-section manual: only its chunks are embedded again.
        manual_chunks = kb.store.count(ids["manual.md"])
        (docs / "manual.md").write_text(_manual(12, changed=5), encoding="utf-8")
        # Changed files of several formats; a PDF comment line changes the bytes, not the text.
        (docs / "support_portal.html").write_text(
            (docs / "support_portal.html")
            .read_text(encoding="utf-8")
            .replace("</body>", "<p>Portal hours changed to 8:00-20:00.</p></body>"),
            encoding="utf-8",
        )
        with open(docs / "field_manual.pdf", "ab") as f:
            f.write(b"\n% revised\n")
        shutil.copy(FIXTURES / "admin_guide.docx", docs / "maintenance_ja.docx")
        shutil.copy(FIXTURES / "faq.xlsx", docs / "price_list.xlsx")
        with open(docs / "faq_ja.csv", "ab") as f:
            f.write("\nトナーの型番は？,TN-9999 です。\n".encode("cp932"))
        (docs / "release_notes.txt").unlink()
        (docs / "training.pptx").rename(docs / "training_v2.pptx")
        (docs / "hours_sjis.txt.meta.json").write_text(json.dumps({"groups": ["support"]}))
        third = ingestor.sync_folder(docs)
        outcome = {f.path: f for f in third.files}
        updated = {n for n, f in outcome.items() if f.outcome == "updated"}
        assert updated == {
            "manual.md",
            "support_portal.html",
            "field_manual.pdf",
            "maintenance_ja.docx",
            "price_list.xlsx",
            "faq_ja.csv",
        }
        assert outcome["release_notes.txt"].outcome == "deleted"
        assert outcome["training.pptx"].outcome == "deleted"
        assert outcome["training_v2.pptx"].outcome == "added"
        assert outcome["hours_sjis.txt"].outcome == "regrouped"
        assert third.count("failed") == 0
        # Embedded: the manual's changed chunk(s) (text and title vectors) and the other
        # changed files' new chunks, not the manual's unchanged sections.
        others = (
            sum(outcome[n].chunks for n in updated - {"manual.md"})
            + outcome["training_v2.pptx"].chunks
        )
        assert third.embedded <= 2 * (others + 2) and manual_chunks > 4

        records = catalog(db)
        assert ids["release_notes.txt"] not in records
        assert kb.store.count(ids["release_notes.txt"]) == 0
        for name in updated:
            rec = records[ids[name]]
            assert rec.version == 2 and rec.status == "indexed"
            assert point_hashes(kb, rec.id) == {rec.hash: rec.chunk_count}  # old points gone
        with db.session() as s:
            history = s.query(DocumentVersion).filter_by(document_id=ids["manual.md"]).all()
        assert sorted(v.version for v in history) == [1, 2]
        hours = kb.store.document_chunks(ids["hours_sjis.txt"])
        assert hours and all(p.chunk.groups == ("support",) for p in hours)
        assert records[ids["hours_sjis.txt"]].version == 1  # not re-indexed
        hits, _ = kb.search(FACTS["hours_sjis.txt"], acl=PUBLIC)
        assert ids["hours_sjis.txt"] not in {h.chunk.document_id for h in hits}
        hits, _ = kb.search("TN-9999 トナーの型番", acl=PUBLIC, top_k=3)
        assert hits[0].chunk.document_id == ids["faq_ja.csv"] and hits[0].chunk.version == 2


def _only_one_version(passages, document_id):
    versions = {p.chunk.version for p in passages if p.chunk.document_id == document_id}
    return versions


def test_a_replacement_is_atomic_for_searchers(tmp_path):
    """Interleave the writes of a replacement with searches: one version at every moment."""
    docs = tmp_path / "docs"
    docs.mkdir()
    path = docs / "manual.md"
    path.write_text(_manual(6), encoding="utf-8")
    query = "How do I clean roller R3 and what torque for screw S3?"
    with open_kb(settings_for(tmp_path / "var")) as (kb, db):
        ingestor = Ingestor(kb, db)
        doc_id = ingestor.sync_folder(docs).files[0].document_id
        old_hash = catalog(db)[doc_id].hash

        # The pipeline's write steps for version 2, taken one at a time with searches between.
        from kb.ingest.parse import parse_file
        from kb.ingest.pipeline import IngestReport, file_hash

        path.write_text(_manual(6, changed=3), encoding="utf-8")
        new_hash = file_hash(path.read_bytes())
        parsed = parse_file(path, max_bytes=10**7)
        chunks = ingestor.indexer.chunker.chunk(
            parsed,
            document_id=doc_id,
            source_path="manual.md",
            groups=(),
            version=2,
            doc_hash=new_hash,
        )
        embedded = ingestor.indexer.embed(chunks, IngestReport("t", "t"))
        assert len(embedded) >= 4

        def check(expected: int) -> None:
            hits, _ = kb.search(query, acl=PUBLIC)
            assert _only_one_version(hits, doc_id) == {expected}
            view = current_versions(kb.store.document_chunks(doc_id))
            assert {p.chunk.version for p in view} == {expected}

        check(1)
        kb.store.upsert(embedded[: len(embedded) // 2])  # half the new version written
        assert set(point_hashes(kb, doc_id)) == {old_hash, new_hash}  # the store holds both
        check(1)
        kb.store.upsert(embedded[len(embedded) // 2 :])
        check(1)
        kb.store.delete_document(doc_id, keep_hash=new_hash)  # the commit point
        check(2)


def test_concurrent_searches_see_exactly_one_version(tmp_path):
    """A writer thread replaces a document again and again while a reader searches."""
    docs = tmp_path / "docs"
    docs.mkdir()
    path = docs / "manual.md"
    contents = [_manual(6), _manual(6, changed=2)]
    query = "clean roller R2 torque screw S2"
    with open_kb(settings_for(tmp_path / "var")) as (kb, db):
        ingestor = Ingestor(kb, db)
        path.write_text(contents[0], encoding="utf-8")
        doc_id = ingestor.sync_folder(docs).files[0].document_id
        stop = threading.Event()
        seen: list[set[int]] = []
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                while not stop.is_set():
                    hits, _ = kb.search(query, acl=PUBLIC)
                    seen.append(_only_one_version(hits, doc_id))
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for i in range(1, 9):
                before, deadline = len(seen), time.monotonic() + 60
                while len(seen) == before and time.monotonic() < deadline and not errors:
                    time.sleep(0.01)  # let the reader search between writes, under any load
                path.write_text(contents[i % 2], encoding="utf-8")
                report = ingestor.sync_folder(docs, optimize=False)
                assert report.count("updated") == 1
        finally:
            stop.set()
            thread.join()
        assert not errors
        assert len(seen) >= 8
        assert all(len(v) == 1 for v in seen), [v for v in seen if len(v) != 1]
        assert catalog(db)[doc_id].version == 9


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_kb_ingest_hands_its_run_to_the_running_service(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("printer_guide.md", "field_manual.pdf", "faq_ja.csv"):
        shutil.copy(FIXTURES / name, docs / name)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really")
    env = {"KB_DATA_DIR": str(tmp_path / "var"), "KB_EMBEDDING_CACHE": str(EMBED_CACHE)}
    runner = CliRunner()

    with open_kb(settings_for(tmp_path / "var")) as (kb, db):  # the "service" holds the store
        # Nobody answers at KB_SERVICE_URL: a clear one-line error, no traceback.
        port = _free_port()
        lonely = runner.invoke(
            main, ["ingest", str(docs)], env={**env, "KB_SERVICE_URL": f"http://127.0.0.1:{port}"}
        )
        assert lonely.exit_code == 1 and "Traceback" not in lonely.output
        assert "in use" in lonely.output and "No service answers" in lonely.output

        app = create_app(kb.settings, lifespan=serving(kb, db))
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.05)
            env["KB_SERVICE_URL"] = f"http://127.0.0.1:{port}"
            handed = runner.invoke(main, ["ingest", str(docs), "--json"], env=env)
            assert handed.exit_code == 0, handed.output
            report = json.loads(handed.output[handed.output.index("{") :])
            assert report["status"] == "finished"
            assert (report["added"], report["failed"]) == (3, 1)
            bad = next(f for f in report["files"] if f["path"] == "broken.pdf")
            assert bad["outcome"] == "failed" and bad["error"]
            hits, _ = kb.search(FACTS["field_manual.pdf"], acl=PUBLIC, top_k=3)
            assert hits and hits[0].chunk.source_path == "field_manual.pdf"

            listed = runner.invoke(main, ["runs"], env=env)
            assert listed.exit_code == 0 and report["id"] in listed.output
            shown = runner.invoke(main, ["runs", report["id"]], env=env)
            assert shown.exit_code == 0 and "broken.pdf" in shown.output

            # --reindex is handed over too: unchanged files parsed and indexed again.
            redone = runner.invoke(main, ["ingest", str(docs), "--reindex", "--json"], env=env)
            assert redone.exit_code == 0, redone.output
            again = json.loads(redone.output[redone.output.index("{") :])
            assert (again["updated"], again["unchanged"], again["failed"]) == (3, 0, 1)
            # --recreate would drop what the service is serving: refused, nothing touched.
            refused = runner.invoke(main, ["ingest", str(docs), "--recreate"], env=env)
            assert refused.exit_code == 1 and "stop `kb serve` first" in refused.output
            hits, _ = kb.search(FACTS["field_manual.pdf"], acl=PUBLIC, top_k=3)
            assert hits and hits[0].chunk.source_path == "field_manual.pdf"
        finally:
            server.should_exit = True
            thread.join(timeout=30)


class _EarlierAnalyzer(BM25Encoder):
    """The term analyzer before version 2: katakana loanwords without their English origin."""

    def _terms(self, text: str) -> list[tuple[str, Kind]]:
        return [(t, kind) for t, kind in super()._terms(text) if kind != "origin"]


def test_documents_indexed_by_an_earlier_analyzer_are_re_encoded_by_the_next_sync(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "receipts-ja.md").write_text(
        "# 領収書\n\nレシートの写真は最大 50 枚までアプリに保存されます。\n", encoding="utf-8"
    )
    (docs / "printer.md").write_text("# Printer\n\nThe toner lasts 12,000 pages.\n", "utf-8")
    receipt = term_id("receipt")
    with open_kb(settings_for(tmp_path / "var")) as (kb, db):
        current = kb.sparse
        kb.sparse = _EarlierAnalyzer()
        ingestor = Ingestor(kb, db)
        ingestor.sync_folder(docs)
        with db.session() as s:  # what an upgraded catalog says of them (migration 0005)
            for rec in s.execute(select(DocumentRecord)).scalars():
                rec.analyzer = 1
        kb.sparse = current
        # The stored terms lack what questions now look for: 「レシート」 is also "receipt".
        assert kb.store.present_terms([receipt], acl=PUBLIC) == set()

        report = ingestor.sync_folder(docs)

        assert report.terms_refreshed == 2
        assert report.count("unchanged") == 2 and report.embedded == 0
        assert kb.store.present_terms([receipt], acl=PUBLIC) == {receipt}
        hits, _ = kb.search("How many receipt photos does the app keep?", acl=PUBLIC)
        assert hits[0].chunk.source_path == "receipts-ja.md"
        with db.session() as s:
            assert {r.analyzer for r in s.execute(select(DocumentRecord)).scalars()} == {
                ANALYZER_VERSION
            }
        assert ingestor.sync_folder(docs).terms_refreshed == 0
