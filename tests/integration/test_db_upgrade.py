"""``kb db upgrade`` is the migration step; the service refuses a schema behind the code
(the embedded SQLite default upgrades itself); concurrent upgrades are safe (issue 24)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text

from kb.api.app import create_app
from kb.cli.main import main
from kb.db.engine import Database, SchemaError, head_revisions
from kb.retrieval.settings import EmbedderSettings, Settings

HEAD = ", ".join(sorted(head_revisions()))


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    return {"KB_DATA_DIR": str(tmp_path / "var"), "KB_DATABASE_URL": url}


def test_upgrade_is_idempotent_and_status_tells(database_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = _env(tmp_path, database_url)
    status = runner.invoke(main, ["db", "status"], env=env)
    assert status.exit_code == 1 and "at none" in status.output and "kb db upgrade" in status.output
    first = runner.invoke(main, ["db", "upgrade"], env=env)
    assert first.exit_code == 0, first.output
    assert f"upgraded from revision none to {HEAD}" in first.output
    again = runner.invoke(main, ["db", "upgrade"], env=env)
    assert again.exit_code == 0 and f"already at revision {HEAD}" in again.output
    assert runner.invoke(main, ["db", "status"], env=env).exit_code == 0


def test_upgrade_error_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://kb:s3cret@127.0.0.1:9/kb"
    result = CliRunner().invoke(main, ["db", "upgrade"], env=_env(tmp_path, url))
    assert result.exit_code == 1 and "Error: cannot upgrade" in result.output
    assert "s3cret" not in result.output and "Traceback" not in result.output


@pytest.mark.postgres
def test_server_database_behind_is_refused_naming_the_command(
    postgres_url: str, tmp_path: Path
) -> None:
    db = Database(postgres_url)
    try:
        with pytest.raises(SchemaError, match=r"none \(empty\).*run `kb db upgrade`"):
            db.check_schema(auto_upgrade=Settings(database_url=postgres_url).auto_upgrade())
    finally:
        db.dispose()
    # kb serve: one line before uvicorn starts, nothing served.
    served = CliRunner().invoke(main, ["serve", "--port", "9"], env=_env(tmp_path, postgres_url))
    assert served.exit_code == 1 and "run `kb db upgrade`" in served.output
    # The app's own start (uvicorn api.main:app, several workers) refuses too.
    settings = Settings(
        data_dir=tmp_path / "var",
        database_url=postgres_url,
        embedder=EmbedderSettings(models=["hash"]),
    )
    with pytest.raises(SchemaError, match="kb db upgrade"), TestClient(create_app(settings)):
        pass


def test_embedded_sqlite_default_upgrades_itself(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    assert settings.auto_upgrade()
    assert not Settings(database_url="postgresql+psycopg://x@h/db").auto_upgrade()
    assert Settings(
        database_url="postgresql+psycopg://x@h/db", database_auto_upgrade=True
    ).auto_upgrade()
    db = Database(settings.db_url())
    try:
        db.check_schema(auto_upgrade=True)
        db.check_schema(auto_upgrade=False)  # now current: nothing to refuse
    finally:
        db.dispose()


def test_a_schema_newer_than_the_code_is_refused(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.migrate()
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
        with pytest.raises(SchemaError, match="f00dfeed, which this version does not know"):
            db.check_schema(auto_upgrade=True)
    finally:
        db.dispose()


@pytest.mark.postgres
def test_concurrent_upgrades_wait_for_each_other(postgres_url: str) -> None:
    """Four processes starting at once (compose, several replicas): one upgrades, the others
    wait on the advisory lock and find nothing to do."""
    results: list[tuple[set[str], set[str]] | BaseException] = []

    def run() -> None:
        db = Database(postgres_url)
        try:
            results.append(db.migrate())
        except BaseException as exc:  # noqa: BLE001 - reported below
            results.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(isinstance(r, tuple) for r in results), results
    befores = sorted(", ".join(sorted(r[0])) for r in results if isinstance(r, tuple))
    assert befores == ["", HEAD, HEAD, HEAD]  # exactly one did the work
