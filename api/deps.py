"""Dependencies: the caller's identity and the services loaded in the lifespan."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from db.engine import Database
from ingest.pipeline import Ingestor
from ingest.runner import IngestRunner
from ingest.uploads import DocumentManager, FileStore
from retrieval.errors import KBError
from retrieval.guidelines import Guidelines
from retrieval.models import AccessFilter
from retrieval.service import KnowledgeBase
from retrieval.settings import Settings


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is asking. Read from headers for now; real authentication replaces this one place."""

    user_id: str
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    department: str | None

    @property
    def acl(self) -> AccessFilter:
        """What this user may read."""
        return AccessFilter(groups=self.groups)


_RUNNER_LOCK = threading.Lock()


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(sorted({v.strip() for v in (value or "").split(",") if v.strip()}))


def get_identity(
    x_user_id: Annotated[str | None, Header()] = None,
    x_user_groups: Annotated[str | None, Header()] = None,
    x_user_roles: Annotated[str | None, Header()] = None,
    x_user_department: Annotated[str | None, Header()] = None,
) -> Identity:
    """Identity from ``X-User-Id``, ``X-User-Groups``, ``X-User-Roles``, ``X-User-Department``."""
    return Identity(
        user_id=(x_user_id or "anonymous").strip() or "anonymous",
        groups=_split(x_user_groups),
        roles=_split(x_user_roles) or ("employee",),
        department=(x_user_department or "").strip() or None,
    )


WRITER_ROLES = ("admin", "content_owner")
"""Roles that may change documents and start ingestion runs."""


def require_writer(identity: Identity) -> Identity:
    """The caller, if they may write documents; else ``FORBIDDEN``."""
    if not set(identity.roles) & set(WRITER_ROLES):
        raise KBError("this needs the role content_owner or admin (X-User-Roles)", code="FORBIDDEN")
    return identity


def get_writer(identity: Annotated[Identity, Depends(get_identity)]) -> Identity:
    """Dependency form of :func:`require_writer`."""
    return require_writer(identity)


def get_runner(request: Request) -> IngestRunner:
    """The background ingestion runner (made on first use when the lifespan made none)."""
    state = request.app.state
    with _RUNNER_LOCK:
        runner: IngestRunner | None = getattr(state, "runner", None)
        if runner is None:
            runner = make_runner(state.kb, state.db, state.settings)
            state.runner = runner
    return runner


def get_documents(request: Request) -> DocumentManager:
    """Uploads, replacements, deletions and group changes, sharing the runner's write lock."""
    runner = get_runner(request)
    settings: Settings = request.app.state.settings
    return DocumentManager(
        runner.ingestor, FileStore(settings.files_dir(), settings.max_file_bytes), runner.lock
    )


def make_runner(kb: KnowledgeBase, db: Database, settings: Settings) -> IngestRunner:
    """The service's one runner over its knowledge base and catalog."""
    return IngestRunner(Ingestor(kb, db), roots=list(settings.ingest_roots))


def get_kb(request: Request) -> KnowledgeBase:
    """The knowledge base opened in the lifespan."""
    kb: KnowledgeBase = request.app.state.kb
    return kb


def get_db(request: Request) -> Database:
    """The database opened in the lifespan."""
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


STAFF_ROLES = ("support", "admin")
"""Roles that see the unanswered queue, publish answers and read analytics."""


def require_staff(identity: Annotated[Identity, Depends(get_identity)]) -> Identity:
    """The caller, when they hold a support or admin role; else ``FORBIDDEN``."""
    if not set(identity.roles) & set(STAFF_ROLES):
        raise KBError(
            f"this needs one of the roles {', '.join(STAFF_ROLES)} (X-User-Roles)",
            code="FORBIDDEN",
        )
    return identity


def get_guidelines(request: Request) -> Guidelines:
    """The data-handling guidelines of the app's settings (compiled once, cached)."""
    settings: Settings = request.app.state.settings
    return Guidelines.from_settings(settings.guidelines)


IdentityDep = Annotated[Identity, Depends(get_identity)]
StaffDep = Annotated[Identity, Depends(require_staff)]
GuidelinesDep = Annotated[Guidelines, Depends(get_guidelines)]
WriterDep = Annotated[Identity, Depends(get_writer)]
RunnerDep = Annotated[IngestRunner, Depends(get_runner)]
DocumentsDep = Annotated[DocumentManager, Depends(get_documents)]
KBDep = Annotated[KnowledgeBase, Depends(get_kb)]
DBDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
