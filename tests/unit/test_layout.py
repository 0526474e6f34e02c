"""One import package (issue 24): the code imports itself as ``kb.…`` only, so a checkout
never loads a module twice under two names and the wheel installs nothing generic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_layout_is_applied_everywhere() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "relayout.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"run `python scripts/relayout.py`:\n{done.stdout}"


def test_no_module_is_loaded_under_a_generic_name() -> None:
    script = (
        "import sys, kb.api.main, kb.cli.main, kb.ingest.worker, kb.eval.run;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'api', 'cli', 'db', 'eval', 'ingest', 'retrieval'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"KB_DATA_DIR": str(ROOT / "var" / "layout-test"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
