"""The installable package (issue 24): the wheel built from this repository installs
non-editable into a fresh environment, puts one import package (``kb``) into site-packages,
and ``kb serve`` run from another directory serves the pages, the widget, the staff pages and
their assets, with the migrations and prompts inside the package."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.server_process import get, light_env, serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # server processes
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["--disable-pip-version-check", "-w", str(out), str(ROOT)],
        cwd=out,
        check=True,
        timeout=600,
    )
    (built,) = out.glob("kb_assistant-*.whl")
    return built


def test_the_wheel_holds_one_package_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"kb", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for needed in (
        "kb/__init__.py",
        "kb/api/app.py",
        "kb/cli/main.py",
        "kb/frontend/index.html",
        "kb/frontend/console.html",
        "kb/frontend/pages.css",
        "kb/frontend/favicon.svg",
        "kb/frontend/lib/dom.js",
        "kb/frontend/widget/kb-widget.js",
        "kb/db/migrations/env.py",
        "kb/db/migrations/script.py.mako",
        "kb/db/migrations/versions/0001_initial_schema.py",
        "kb/retrieval/prompts/answer.en.jinja",
        "kb/retrieval/trained/ranker.txt",
        "kb/eval/cases/sample.jsonl",
    ):
        assert needed in names, needed
    assert not any("__pycache__" in n or n.startswith("kb/tests") for n in names)


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed (not editable); the dependencies
    come from this environment's site-packages through a .pth line (installing them again
    would take minutes and gigabytes)."""
    venv = tmp_path_factory.mktemp("venv")
    # Without its own pip and setuptools (they would shadow this environment's versions):
    # this environment's pip installs into it (--python).
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300
    )
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "kb-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
        + ["--no-index"]
        + ["--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=300,
    )
    return venv


def test_installed_package_comes_from_the_environment_not_the_checkout(
    installed: Path, tmp_path: Path
) -> None:
    python = str(installed / "bin" / "python")
    script = (
        "import importlib.util, kb, kb.api.app, kb.db.engine;"
        "print(kb.__file__);"
        "print([n for n in ('api', 'cli', 'db', 'eval', 'ingest', 'retrieval')"
        " if importlib.util.find_spec(n)])"
    )
    done = subprocess.run(
        [python, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=light_env(tmp_path / "var"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    where, generic = done.stdout.splitlines()
    assert where.startswith(str(installed)), where
    assert generic == "[]"  # no generic top-level names installed
    check = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_kb_serve_from_another_directory_serves_everything(installed: Path, tmp_path: Path) -> None:
    kb = str(installed / "bin" / "kb")
    env = light_env(tmp_path / "var")
    upgraded = subprocess.run(
        [kb, "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert upgraded.returncode == 0 and "upgraded from revision none" in upgraded.stdout, (
        upgraded.stdout + upgraded.stderr
    )
    with serve(env, tmp_path / "serve.log", command=[kb], cwd=tmp_path) as served:
        for path, marker in (
            ("/", b"<html"),
            ("/static/widget/kb-widget.js", b"function"),
            ("/console", b"<html"),
            ("/content", b"<html"),
            ("/evaluation", b"<html"),
            ("/vocabulary", b"<html"),
            ("/static/pages.css", b"{"),
            ("/static/favicon.svg", b"<svg"),
            ("/static/lib/dom.js", b"function"),
            ("/docs", b"<html"),
            ("/readyz", b'"status"'),
            ("/metrics", b"kb_http_request_duration_seconds"),
        ):
            status, _, body = get(served.url + path)
            assert status == 200, (path, status, body[:200])
            assert marker in body.lower() if marker.startswith(b"<") else marker in body, path
