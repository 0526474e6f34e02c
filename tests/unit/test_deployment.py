"""The container files, checked by reading them (no Docker engine here, issue 24):
multi-stage non-root Dockerfile with a health check, a .dockerignore that keeps the virtual
environment, git, the data folder and caches out, and a compose file with every service."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), one list per stage."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [ln for ln in text.replace("\\\n", " ").splitlines() if ln.strip()]
    stages: list[list[str]] = []
    for line in lines:
        if line.lstrip().startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        assert stages, "the Dockerfile starts with FROM"
        stages[-1].append(line.strip())
    return stages


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    stages = _stages()
    assert len(stages) >= 2
    build, final = stages[0], stages[-1]
    assert any("--require-hashes" in i and "requirements.lock" in i for i in build)
    assert not any(re.search(r"pip install .*(-e|--editable) ", i) for s in stages for i in s)
    users = [i.split(None, 1)[1] for i in final if i.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert any(i.upper().startswith("HEALTHCHECK ") and "/readyz" in i for i in final)
    assert any(i.upper().startswith("CMD ") and '"kb", "serve"' in i for i in final)
    # Nothing from the build context in the final stage: only the built environment.
    assert not any(i.upper().startswith(("COPY . ", "ADD ")) for i in final)
    assert any(i.startswith("COPY --from=") for i in final)


def _ignored(patterns: list[str], path: str) -> bool:
    """Docker's rule, simplified: a pattern matches the path or one of its parent folders;
    the last matching pattern wins (``!`` re-includes)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        candidates = [pat, pat.removeprefix("**/")] if pat.startswith("**/") else [pat]
        for prefix in prefixes:
            tail = prefix.split("/")[-1]
            if any(
                fnmatch.fnmatchcase(prefix, c) or (c != pat and fnmatch.fnmatchcase(tail, c))
                for c in candidates
            ):
                ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/config",
        "var/widget_secret",
        "var/kb.sqlite3",
        ".env",
        "api/__pycache__/app.cpython-311.pyc",
        ".pytest_cache/kb-embeddings.sqlite3",
        ".mypy_cache/3.11/api.json",
        ".ruff_cache/content",
        "test-artifacts/screenshots/x.png",
        "dist/kb_assistant-0.1.0-py3-none-any.whl",
    ],
)
def test_dockerignore_keeps_secrets_environments_and_caches_out(path: str) -> None:
    patterns = _dockerignore()
    assert _ignored(patterns, path), f"{path} would be sent to the Docker daemon"


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "requirements.lock",
        "api/app.py",
        "frontend/index.html",
        "db/migrations/env.py",
        "retrieval/prompts/answer.en.jinja",
    ],
)
def test_dockerignore_keeps_what_the_wheel_needs(path: str) -> None:
    assert not _ignored(_dockerignore(), path)


def _dockerignore() -> list[str]:
    text = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return data


def test_compose_has_every_service_and_the_startup_order() -> None:
    services = _compose()["services"]
    assert {"qdrant", "postgres", "redis", "migrate", "api", "ingest-worker"} <= set(services)
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"
    migrate = services["migrate"]
    assert migrate["command"] == ["kb", "db", "upgrade"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "ingest-worker"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        for backing in ("qdrant", "postgres", "redis"):
            assert deps[backing]["condition"] == "service_healthy", (name, backing)
    command = services["api"]["command"]
    workers = int(command[command.index("--workers") + 1])
    assert workers > 1
    env = services["api"]["environment"]
    assert env["KB_QDRANT__URL"].startswith("http://qdrant:")
    assert env["KB_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["KB_REDIS_URL"].startswith("redis://redis:")
    assert env["KB_LOG__FORMAT"] == "json"
    # Health checks: the backing services have their own; the one-shot and the worker do not
    # serve HTTP, so the image's /readyz check is off for them.
    for name in ("qdrant", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"]
    for name in ("migrate", "ingest-worker"):
        assert services[name]["healthcheck"] == {"disable": True}
