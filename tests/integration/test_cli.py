"""``kb`` on a small folder of its own: ingest report, bad files, ask --json, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
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


def test_serve_refuses_in_one_line_when_the_store_is_in_use(runner_env, folder):
    from retrieval.settings import Settings
    from retrieval.stores import open_store

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
