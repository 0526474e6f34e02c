"""`kb ingest`'s progress, estimate and summary line (issue 25)."""

from __future__ import annotations

import io

from kb.cli import progress as mod
from kb.cli.progress import IngestProgress, eta_text, summary


def test_summary_names_chunks_indexed_and_texts_embedded_apart():
    data = {
        "run_id": "r1",
        "added": 2,
        "updated": 1,
        "unchanged": 1,
        "deleted": 0,
        "failed": 1,
        "seconds": 12.34,
        "embedded_chunks": 385,
        "files": [
            {"outcome": "added", "chunks": 100},
            {"outcome": "updated", "chunks": 9},
            {"outcome": "added", "chunks": 100},
            {"outcome": "unchanged", "chunks": 50},
            {"outcome": "failed"},
        ],
    }
    line = summary(data, total_chunks=259)
    assert "209 chunks indexed" in line
    assert "385 texts embedded: passages and titles not in the cache" in line
    assert line.endswith("the knowledge base holds 259 chunks")
    assert "holds" not in summary(data)


def test_eta_text():
    assert eta_text(0.2) == "about 1 s"
    assert eta_text(42) == "about 42 s"
    assert eta_text(600) == "about 10 min"


def test_progress_lines_with_an_estimate_when_not_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(mod, "REPORT_EVERY_S", 0.0)
    (tmp_path / "a.md").write_text("x" * 1000, encoding="utf-8")
    (tmp_path / "b.md").write_text("y" * 3000, encoding="utf-8")
    (tmp_path / "a.md.meta.json").write_text("{}", encoding="utf-8")
    clock = iter([100.0, 100.0, 104.0])
    monkeypatch.setattr(mod.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    bar = IngestProgress(tmp_path, quiet=False, stream=out)
    bar.announce(first_run=True)
    bar("a.md", 0, 2)
    bar("b.md", 1, 2)  # a.md (1000 of 4000 bytes) took 4 s: about 12 s left
    bar.close()
    text = out.getvalue()
    assert "ingesting 2 files" in text and "first ingest" in text
    assert "ingest: 1/2 files, 4 s, about 12 s left (b.md)" in text


def test_quiet_progress_says_nothing(tmp_path):
    (tmp_path / "a.md").write_text("x", encoding="utf-8")
    out = io.StringIO()
    bar = IngestProgress(tmp_path, quiet=True, stream=out)
    bar.announce(first_run=True)
    bar("a.md", 0, 1)
    bar.close()
    assert out.getvalue() == ""
