"""Engine, sessions and schema upgrades. Nothing connects at import."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_MIGRATIONS = Path(__file__).parent / "migrations"
UPGRADE_LOCK = 0x6B62_5F64_62  # "kb_db": the PostgreSQL advisory lock key of schema upgrades


class SchemaError(RuntimeError):
    """The database's schema is not the one this version of the code needs (issue 24)."""


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revisions() -> set[str]:
    """The newest migration(s) this version of the code ships."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(_alembic_config()).get_heads())


def known_revisions() -> set[str]:
    """Every migration this version of the code ships."""
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}


def current_revisions(conn: Connection) -> set[str]:
    """The revision(s) the database is at; empty for a database never migrated."""
    from alembic.runtime.migration import MigrationContext

    return set(MigrationContext.configure(conn).get_current_heads())


def _lock(conn: Connection) -> None:
    """Serialise schema upgrades: concurrent starts wait here, then find nothing to do.

    PostgreSQL: a transaction-level advisory lock, released at commit or rollback. SQLite
    takes its write lock at the first DDL statement and waits ``timeout`` for it (and the
    embedded default runs one process).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK})


def upgrade(engine: Engine) -> tuple[set[str], set[str]]:
    """Bring the schema to the newest Alembic revision, under the upgrade lock; idempotent.

    :returns: the revisions before and after.
    """
    from alembic import command

    cfg = _alembic_config()
    with engine.begin() as conn:
        _lock(conn)
        before = current_revisions(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        return before, current_revisions(conn)


def safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


class Database:
    """Sessions over one engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> tuple[set[str], set[str]]:
        """Create or upgrade the schema (under the upgrade lock): the revisions before, after."""
        return upgrade(self.engine)

    def check_schema(self, *, auto_upgrade: bool) -> None:
        """Make sure the schema is the code's: upgrade it when ``auto_upgrade`` (the embedded
        SQLite default), else refuse with the command that upgrades it.

        :raises SchemaError: the database is behind (and may not upgrade itself here), or at a
            revision this version does not know (a newer version migrated it).
        """
        with self.engine.connect() as conn:
            current = current_revisions(conn)
        heads = head_revisions()
        if current == heads:
            return
        unknown = current - known_revisions()
        if unknown:
            raise SchemaError(
                f"the database at {safe_url(self.url)} is at schema revision "
                f"{', '.join(sorted(unknown))}, which this version does not know (a newer "
                "version migrated it): run that version, or restore a matching backup"
            )
        if auto_upgrade:
            self.migrate()
            return
        raise SchemaError(
            f"the database at {safe_url(self.url)} is at schema revision "
            f"{', '.join(sorted(current)) or 'none (empty)'}; this version needs "
            f"{', '.join(sorted(heads))}: run `kb db upgrade` once (the compose `migrate` "
            "service does) before starting the service"
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()
