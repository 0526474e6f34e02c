"""``kb`` on a small folder of its own: ingest report, bad files, ask --json, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.cli.main import main
from tests.integration.conftest import EMBED_CACHE

pytestmark = pytest.mark.integration

GOOD_MD = """# Aster MF-3400 quick facts

## Toner

The Aster MF-3400 standard toner cartridge TN-340 yields about 8,000 pages at 5% coverage.
Replace it when the panel shows message E-21.
"""


@pytest.fixture()
def runner_env(tmp_path: Path) -> dict[str, str]:
    return {"KB_DATA_DIR": str(tmp_path / "var"), "KB_EMBEDDING_CACHE": str(EMBED_CACHE)}


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "facts.md").write_text(GOOD_MD, encoding="utf-8")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<>> garbage without xref")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "junk.md").write_bytes(bytes(range(256)) * 8)
    return docs


@pytest.mark.slow
def test_ingest_reports_bad_files_and_keeps_the_rest(runner_env, folder):
    runner = CliRunner()
    result = runner.invoke(main, ["ingest", str(folder), "--json"], env=runner_env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    outcome = {f["path"]: f for f in report["files"]}
    assert outcome["facts.md"]["outcome"] == "added"
    for bad in ("broken.pdf", "empty.txt", "junk.md"):
        assert outcome[bad]["outcome"] == "failed" and outcome[bad]["error"]
    assert "empty" in outcome["empty.txt"]["error"]

    asked = runner.invoke(
        main, ["ask", "How many pages does the TN-340 toner last?", "--json"], env=runner_env
    )
    assert asked.exit_code == 0, asked.output
    body = json.loads(asked.output)
    assert set(body) >= {"query_id", "status", "answer", "citations", "confidence"}
    assert body["status"] == "answered" and "8,000" in body["answer"]
    assert body["citations"][0]["title"]

    again = runner.invoke(main, ["ingest", str(folder)], env=runner_env)
    assert again.exit_code == 0 and "1 unchanged" in again.output.splitlines()[-1]


def test_user_errors_are_one_line(runner_env, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["ingest", str(tmp_path / "nope")], env=runner_env)
    assert missing.exit_code == 1
    assert missing.output.strip().startswith("Error: no such file or folder")
    assert "Traceback" not in missing.output
    empty = runner.invoke(main, ["ask", "  "], env=runner_env)
    assert empty.exit_code == 1 and "Traceback" not in empty.output


@pytest.mark.slow
def test_serve_refuses_in_one_line_when_the_store_is_in_use(runner_env, folder):
    from kb.retrieval.settings import Settings
    from kb.retrieval.stores import open_store

    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(folder)], env=runner_env).exit_code == 0
    held = open_store(Settings(data_dir=Path(runner_env["KB_DATA_DIR"])))
    held.count()  # opens the shard and takes its folder lock
    try:
        result = runner.invoke(main, ["serve", "--port", "8799"], env=runner_env)
    finally:
        held.close()
    assert result.exit_code == 1
    assert "in use" in result.output and "qdrant" in result.output
    assert "Traceback" not in result.output


def _outcomes(output: str) -> dict[str, str]:
    return {f["path"]: f["outcome"] for f in json.loads(output)["files"]}


@pytest.mark.slow
def test_reindex_parses_unchanged_files_again_and_keeps_answering(runner_env, folder):
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(folder)], env=runner_env).exit_code == 0
    result = runner.invoke(main, ["ingest", str(folder), "--reindex", "--json"], env=runner_env)
    assert result.exit_code == 0, result.output
    outcomes = _outcomes(result.output)
    assert outcomes["facts.md"] == "updated"  # same bytes, parsed and indexed again
    assert outcomes["broken.pdf"] == "failed"
    again = runner.invoke(main, ["ingest", str(folder), "--json"], env=runner_env)
    assert _outcomes(again.output)["facts.md"] == "unchanged"
    asked = runner.invoke(
        main, ["ask", "How many pages does the TN-340 last?", "--json"], env=runner_env
    )
    body = json.loads(asked.output)
    assert body["status"] == "answered" and "8,000" in body["answer"]


@pytest.mark.slow
def test_reindex_with_larger_chunks_leaves_only_the_new_cut(runner_env, tmp_path):
    # The same bytes cut into fewer chunks: the old cut's extra points carry the same content
    # hash and an older version; left behind, they were all a search showed of the document.
    docs = tmp_path / "long"
    docs.mkdir()
    steps = [f"Step {n}: check tray {n} and the roller marked R{n} first." for n in range(1, 41)]
    (docs / "guide.md").write_text("# Paper path\n\n" + " ".join(steps) + "\n", encoding="utf-8")
    runner = CliRunner()
    small = {**runner_env, "KB_RETRIEVAL__CHUNK_SIZE": "60", "KB_RETRIEVAL__CHUNK_OVERLAP": "10"}
    first = runner.invoke(main, ["ingest", str(docs), "--json"], env=small)
    assert first.exit_code == 0, first.output
    large = {**runner_env, "KB_RETRIEVAL__CHUNK_SIZE": "400", "KB_RETRIEVAL__CHUNK_OVERLAP": "40"}
    again = runner.invoke(main, ["ingest", str(docs), "--reindex", "--json"], env=large)
    assert again.exit_code == 0, again.output
    (before,), (after,) = (json.loads(r.output)["files"] for r in (first, again))
    assert after["outcome"] == "updated" and 1 < after["chunks"] < before["chunks"]
    from kb.retrieval.settings import Settings
    from kb.retrieval.stores import open_store

    store = open_store(Settings(data_dir=Path(runner_env["KB_DATA_DIR"])))
    try:
        kept = store.document_chunks(after["document_id"])
    finally:
        store.close()
    assert len(kept) == after["chunks"] and {p.chunk.version for p in kept} == {2}
    asked = runner.invoke(main, ["ask", "What is marked R37?", "--json"], env=large)
    assert "R37" in json.loads(asked.output)["answer"]


@pytest.mark.slow
def test_recreate_rebuilds_an_index_built_with_other_vectors(runner_env, folder):
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(folder)], env=runner_env).exit_code == 0
    # Switching off the title vectors changes the collection's vectors: a plain sync refuses
    # and names the cure, which then works.
    changed = {**runner_env, "KB_EMBEDDER__TITLE_VECTORS": "false"}
    refused = runner.invoke(main, ["ingest", str(folder)], env=changed)
    assert refused.exit_code == 1 and "kb ingest --recreate" in refused.output
    rebuilt = runner.invoke(main, ["ingest", str(folder), "--recreate", "--json"], env=changed)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert _outcomes(rebuilt.output)["facts.md"] == "updated"
    asked = runner.invoke(
        main, ["ask", "How many pages does the TN-340 last?", "--json"], env=changed
    )
    assert "8,000" in json.loads(asked.output)["answer"]


@pytest.mark.slow
def test_recreate_is_refused_while_other_sources_have_documents(runner_env, folder, tmp_path):
    runner = CliRunner()
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.md").write_text("# Canteen\n\nThe canteen opens at 11:30.\n", encoding="utf-8")
    assert runner.invoke(main, ["ingest", str(folder)], env=runner_env).exit_code == 0
    assert runner.invoke(main, ["ingest", str(other)], env=runner_env).exit_code == 0
    refused = runner.invoke(main, ["ingest", str(folder), "--recreate"], env=runner_env)
    assert refused.exit_code == 1
    assert (
        "--recreate would drop documents" in refused.output
        and str(other.resolve()) in refused.output
    )
    # Nothing was dropped: both folders still answer.
    asked = runner.invoke(main, ["ask", "When does the canteen open?", "--json"], env=runner_env)
    assert "11:30" in json.loads(asked.output)["answer"]
