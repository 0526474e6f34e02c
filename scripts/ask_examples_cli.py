"""Ask every example question through the real `kb ask --json` command and print the issue's
two rates: answerable questions answered citing an expected document, unanswerable ones
escalated.

    KB_DATA_DIR=/tmp/kb .venv/bin/kb ingest docs_corpus/
    KB_DATA_DIR=/tmp/kb .venv/bin/python scripts/ask_examples_cli.py

One `kb ask` process per question (about 6 s each, models included), on the embedded default:
cited documents are matched to the expected source paths through ``<KB_DATA_DIR>/kb.sqlite3``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    data_dir = Path(os.environ.get("KB_DATA_DIR", "var"))
    with sqlite3.connect(data_dir / "kb.sqlite3") as conn:
        paths = dict(conn.execute("SELECT id, source_path FROM documents"))
    kb = str(Path(sys.executable).parent / "kb")
    answered = escalated = answerable = unanswerable = 0
    for line in (ROOT / "eval" / "cases" / "sample.jsonl").read_text("utf-8").splitlines():
        case = json.loads(line)
        command = [kb, "ask", "--json", case["text"]]
        if case.get("groups"):
            command += ["--groups", ",".join(case["groups"])]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        reply = json.loads(done.stdout)
        cited = {paths.get(c["document_id"]) for c in reply["citations"]}
        if case["answerable"]:
            answerable += 1
            hit = reply["status"] == "answered" and bool(cited & set(case["expected_sources"]))
            answered += hit
        else:
            unanswerable += 1
            hit = reply["status"] == "escalated"
            escalated += hit
        mark = "ok  " if hit else "MISS"
        print(f"{mark} {case['id']} {reply['status']:9} {reply['confidence']:.4f}")
    print(
        f"answered citing an expected document: {answered}/{answerable}"
        f" ({answered / answerable:.1%}); escalated: {escalated}/{unanswerable}"
        f" ({escalated / unanswerable:.1%})"
    )


if __name__ == "__main__":
    main()
