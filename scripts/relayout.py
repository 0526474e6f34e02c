"""Put the project's top-level packages under one import package, ``kb`` (issue 24).

The repository keeps its folders (``api/``, ``cli/``, ``db/``, ``eval/``, ``ingest/``,
``retrieval/``, any other top-level Python package, and ``frontend/``); ``kb/`` holds
``__init__.py`` and one relative symbolic link per folder (``kb/api -> ../api``). Python,
setuptools (wheel and editable install), mypy and Docker all follow the links, so the installed
wheel has ``kb/api/...`` and nothing generic at the top of site-packages, and a checkout runs
without installing (``python -m kb.cli.main``).

What it does, idempotently (a second run changes nothing):

1. creates ``kb/__init__.py`` and the links for every top-level package folder;
2. rewrites imports in every ``.py`` file (``from api.x import y`` -> ``from kb.api.x import y``,
   also inside code held in strings: ``python -c`` scripts of the tests), and imports and
   ``python -m`` commands in the Markdown documents, Makefile, Dockerfile and ``.ci/run``
   (not CHANGELOG.md: it records what the commands were);
3. rewrites string literals that are exactly a module path of those packages, with an optional
   ``:attribute`` or trailing attributes: uvicorn's ``"api.main:app"``, ``-m "ingest.worker"``,
   mock targets, logger names (``__name__`` becomes ``kb.api.errors``); strings that merely
   look dotted (``"ingest.run"`` audit actions, ``"retrieval.top_k"`` setting paths) name no
   module file and stay as they are;
4. switches the Makefile's editable install from compat mode (the checkout's root, generic
   names and all, on sys.path) to setuptools' default (a finder that maps ``kb`` alone);
5. rewrites pyproject.toml: the console script, package discovery (``kb``, ``kb.*``), mypy's
   exclusions (mypy checks the code once, through ``kb/``).

Then run ``ruff check --fix . && ruff format .`` (import blocks are re-sorted; the script does
it when ruff is on PATH or in ``.venv/bin``). Re-run it after merging branches that add modules
or imports: ``python scripts/relayout.py``; ``--check`` exits 1 when something is left to do.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_PACKAGES = {"tests", "bench", "scripts", "kb", "build", "dist", "docs", "docs_corpus"}
DATA_FOLDERS = ["frontend"]
SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "node_modules", "var", "kb"}
SKIP_DIRS |= {".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}

KB_INIT = '''"""The knowledge-base assistant: one import package over the repository's folders.

``kb.api``, ``kb.cli``, ``kb.db``, ``kb.eval``, ``kb.ingest``, ``kb.retrieval`` (and the pages in
``kb/frontend``) are the top-level folders of the repository, linked here
(``scripts/relayout.py``), so that an installed wheel puts one name, ``kb``, in site-packages.
"""

__version__ = "0.1.0"
'''


def packages(root: Path) -> list[str]:
    """Top-level folders that are Python packages (have ``__init__.py``)."""
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and p.name not in NOT_PACKAGES
        and not p.name.startswith(".")
        and (p / "__init__.py").is_file()
    )


TEXT_FILES = {"Makefile", "Dockerfile", "run"}  # run: .ci/run
KEEP_AS_WRITTEN = {"CHANGELOG.md"}  # history says what the commands were then


def source_files(root: Path) -> list[Path]:
    """Python files, and the documents and build files that show commands or imports."""
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        out += [
            Path(folder) / f
            for f in files
            if (f.endswith((".py", ".md")) or f in TEXT_FILES) and f not in KEEP_AS_WRITTEN
        ]
    return sorted(out)


def link_tree(root: Path, names: list[str], changes: list[str], apply: bool) -> None:
    kb = root / "kb"
    init = kb / "__init__.py"
    if not init.is_file():
        changes.append("create kb/__init__.py")
        if apply:
            kb.mkdir(exist_ok=True)
            init.write_text(KB_INIT, encoding="utf-8")
    for name in [*names, *DATA_FOLDERS]:
        link = kb / name
        target = Path("..") / name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        changes.append(f"link kb/{name} -> ../{name}")
        if apply:
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target, target_is_directory=True)


def is_module(root: Path, dotted: str) -> bool:
    """``dotted`` (``pkg.mod`` or ``pkg.mod.attr...``) starts with a module file of at least
    two components."""
    parts = dotted.split(".")
    for n in range(len(parts), 1, -1):
        base = root.joinpath(*parts[:n])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return True
    return False


def rewrite_source(text: str, names: list[str], root: Path) -> str:
    group = "|".join(re.escape(n) for n in names)
    # Imports: at a line's start (indented or not), or after ';' or a quote (code in strings).
    # `from X...` only when the same line imports, so prose ("from eval runs") stays.
    text = re.sub(
        rf"(^[ \t]*|[;\"'][ \t]*)from[ \t]+({group})(?=[.\s])(?=[^\n]*\simport\s)",
        r"\1from kb.\2",
        text,
        flags=re.MULTILINE,
    )
    text = re.sub(
        rf"(^[ \t]*|[;\"'][ \t]*)import[ \t]+({group})(?=[.\s,;]|$)",
        r"\1import kb.\2",
        text,
        flags=re.MULTILINE,
    )
    # The editable install maps only `kb` (setuptools' finder), not the checkout's root with
    # its generic names, as compat mode's .pth line did.
    text = text.replace("-e . --config-settings editable_mode=compat", "-e .")
    # Commands: python -m eval.calibrate -> python -m kb.eval.calibrate.
    text = re.sub(rf"(python3?(?:\.\d+)? -m )({group})\.", r"\1kb.\2.", text)

    # Whole string literals naming a module (optionally ':attr' or '.attr...').
    def literal(match: re.Match[str]) -> str:
        quote, dotted, attr = match.group(1), match.group(2), match.group(3) or ""
        if not is_module(root, dotted):
            return match.group(0)
        return f"{quote}kb.{dotted}{attr}{quote}"

    return re.sub(
        rf"([\"'])((?:{group})(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(:[A-Za-z_][A-Za-z0-9_]*)?\1",
        literal,
        text,
    )


def rewrite_pyproject(text: str, names: list[str]) -> str:
    text = re.sub(r'(?m)^kb = "(?!kb\.)([\w.]+:\w+)"', r'kb = "kb.\1"', text)
    text = re.sub(
        r"(?ms)^\[tool\.setuptools\.packages\.find\]\n.*?(?=^\[)",
        "[tool.setuptools.packages.find]\n"
        "# One import package: kb/ links the top-level folders (scripts/relayout.py, issue 24).\n"
        'include = ["kb", "kb.*"]\n'
        'exclude = ["*.__pycache__"]\n'
        "namespaces = true\n\n",
        text,
    )
    excluded = "|".join([*names, *DATA_FOLDERS, "build"])
    text = re.sub(
        r'(?m)^exclude = \["tests/", "scripts/"\]$|^exclude = \["\^\(.*$',
        f'exclude = ["^({excluded})/", "tests/", "scripts/"]  # checked once, through kb/',
        text,
    )
    return text


def ruff(root: Path) -> None:
    found = [shutil.which("ruff"), Path(sys.executable).parent / "ruff", root / ".venv/bin/ruff"]
    exe = next((str(p) for p in found if p and Path(p).exists()), "")
    if not exe:
        print("ruff not found: run `ruff check --fix . && ruff format .` yourself")
        return
    subprocess.run([exe, "check", "--fix", "--quiet", "."], cwd=root, check=False)
    subprocess.run([exe, "format", "--quiet", "."], cwd=root, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="Only report; exit 1 if needed.")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    root: Path = args.root.resolve()
    apply = not args.check
    names = packages(root)
    changes: list[str] = []
    link_tree(root, names, changes, apply)
    for path in source_files(root):
        if path.resolve() == Path(__file__).resolve():
            continue
        old = path.read_text(encoding="utf-8")
        new = rewrite_source(old, names, root)
        if new != old:
            changes.append(f"rewrite {path.relative_to(root)}")
            if apply:
                path.write_text(new, encoding="utf-8")
    pyproject = root / "pyproject.toml"
    old = pyproject.read_text(encoding="utf-8")
    new = rewrite_pyproject(old, names)
    if new != old:
        changes.append("rewrite pyproject.toml")
        if apply:
            pyproject.write_text(new, encoding="utf-8")
    for line in changes:
        print(line)
    print(f"packages under kb: {', '.join(names)} (+ {', '.join(DATA_FOLDERS)})")
    if args.check:
        return 1 if changes else 0
    if changes:
        ruff(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
