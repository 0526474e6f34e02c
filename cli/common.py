"""What every ``kb`` command shares: the one settings loader, the knowledge base and the
catalog opened for one command, and the audit log's CLI actor.

User errors become :class:`click.ClickException` (one line, exit 1), never a traceback.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from kb.db.engine import Database
    from kb.retrieval.service import KnowledgeBase
    from kb.retrieval.settings import Settings


def load_settings() -> Settings:
    """The settings from the environment and ``.env``; invalid ones end the command."""
    from kb.retrieval.settings import Settings

    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError names the bad setting
        raise click.ClickException(f"invalid settings: {exc}") from exc


@contextmanager
def open_kb(settings: Settings) -> Iterator[KnowledgeBase]:
    """The knowledge base for one command, closed afterwards."""
    from kb.retrieval.errors import KBError
    from kb.retrieval.service import KnowledgeBase

    try:
        kb = KnowledgeBase.open(settings)
    except KBError as exc:
        raise click.ClickException(exc.detail) from exc
    try:
        yield kb
    finally:
        kb.close()


@contextmanager
def open_db(settings: Settings | None = None) -> Iterator[Database]:
    """The catalog database (migrated) for one command, disposed of afterwards."""
    from kb.db.engine import Database

    db = Database((settings or load_settings()).db_url())
    try:
        db.migrate()
        yield db
    finally:
        db.dispose()


def cli_actor() -> str:
    """Who the audit log says did it: the operating-system user."""
    return f"cli:{getpass.getuser()}"


def audit(db: Database, action: str, target: str, **detail: object) -> None:
    """Record a change made from the command line (raises if the log cannot be written)."""
    from kb.services.audit import record

    record(db, actor=cli_actor(), action=action, target=target, detail=detail, strict=True)
