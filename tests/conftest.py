"""Database backends for the tests: SQLite always, PostgreSQL where it is reachable.

``database_url`` is parametrized over both; the PostgreSQL run gets a fresh schema per test
(dropped afterwards) and is skipped with a message when the server does not answer.
``KB_TEST_POSTGRES_URL`` overrides the default local server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "KB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_reachable: dict[str, str | None] = {}


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _postgres_error() -> str | None:
    """``None`` when the server answers, else why not (checked once per session)."""
    if "error" not in _reachable:
        try:
            import psycopg

            with psycopg.connect(_psycopg_dsn(POSTGRES_URL), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _reachable["error"] = None
        except Exception as exc:  # any driver or network error means "not here"
            _reachable["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return _reachable["error"]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections live in a fresh schema of the test PostgreSQL database."""
    with postgres_schema() as url:
        yield url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema of the test PostgreSQL database, dropped afterwards (skips the test when
    the server does not answer)."""
    error = _postgres_error()
    if error is not None:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} ({error})")
    import psycopg

    schema = f"kb_test_{uuid.uuid4().hex[:12]}"
    dsn = _psycopg_dsn(POSTGRES_URL)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: SQLite in ``tmp_path``, then PostgreSQL (its own schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kb.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
