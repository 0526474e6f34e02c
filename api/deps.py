"""Dependencies: the caller's identity and the services loaded in the lifespan."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kb.api.denials import client_ip, record_denial
from kb.api.errors import ApiError
from kb.db.engine import Database
from kb.db.models import User
from kb.ingest.pipeline import Ingestor
from kb.ingest.runner import IngestRunner
from kb.ingest.uploads import DocumentManager, FileStore
from kb.retrieval.errors import KBError
from kb.retrieval.guidelines import Guidelines
from kb.retrieval.service import KnowledgeBase
from kb.retrieval.settings import Settings
from kb.services.identity import Identity

_RUNNER_LOCK = threading.Lock()


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(sorted({v.strip() for v in (value or "").split(",") if v.strip()}))


def _rate_limit_user(request: Request, user_id: str) -> None:
    from kb.api.limits import Bucket, retry_after, user_bucket

    state = request.app.state
    bucket: Bucket | None = getattr(state, "user_bucket", None)
    if bucket is None:
        bucket = state.user_bucket = user_bucket(state.settings)
    wait = bucket.take(user_id)
    if wait is not None:
        raise ApiError(
            f"too many requests for user {user_id}: retry in {retry_after(wait)} s",
            code="RATE_LIMITED",
            headers={"Retry-After": retry_after(wait)},
        )


def _rate_limit_address(request: Request) -> None:
    from kb.api.limits import Bucket, retry_after

    if getattr(request.state, "address_counted", False):
        return
    bucket: Bucket | None = getattr(request.app.state, "address_bucket", None)
    address = client_ip(request) or "unknown"
    wait = bucket.take(address) if bucket is not None else None
    if wait is not None:
        raise ApiError(
            f"too many requests from {address}: retry in {retry_after(wait)} s",
            code="RATE_LIMITED",
            headers={"Retry-After": retry_after(wait)},
        )


_bearer = HTTPBearer(auto_error=False, description="A local API token, widget token or OIDC JWT.")


def get_identity(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
    x_user_id: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_user_groups: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_user_roles: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_user_department: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Identity:
    """The caller, from a bearer token (local API token, widget token or OIDC JWT); from the
    ``X-User-*`` headers only with ``auth.dev_headers`` on a loopback address.

    :raises AuthError: no usable credentials (``401 UNAUTHENTICATED``).
    """
    from kb.services.auth import Authenticator, AuthError, is_loopback

    state = request.app.state
    settings: Settings = state.settings
    identity: Identity | None = None
    try:
        if credentials is not None:
            auth: Authenticator = state.authenticator
            p = auth.verify(credentials.credentials, state.db)
            identity = Identity(p.user_id, p.groups, p.roles, p.department, via=p.via)
        elif request.headers.get("authorization"):
            raise AuthError("the Authorization header must be 'Bearer <token>'")
        elif settings.auth.dev_headers:
            server = request.scope.get("server") or ("testserver", 0)
            if not is_loopback(str(server[0])):  # belt and braces: a proxy in front, say
                raise AuthError("development headers are accepted on a loopback address only")
            identity = Identity(
                user_id=(x_user_id or "").strip() or "anonymous",
                groups=_split(x_user_groups),
                roles=_split(x_user_roles) or ("employee",),
                department=(x_user_department or "").strip() or None,
                via="dev",
            )
        else:
            raise AuthError("authentication required: send 'Authorization: Bearer <token>'")
        identity = _current(state.db, identity)
    except AuthError as exc:
        # Credentials that fail count against the client address (issue 20).
        _rate_limit_address(request)
        record_denial(request, "anonymous", 401, exc.detail)
        raise
    request.state.user_id = identity.user_id
    _rate_limit_user(request, identity.user_id)
    return identity


def _current(db: Database, identity: Identity) -> Identity:
    """``identity`` as the user's record says it is now (issue 19).

    A local API token is looked up on every request already. A widget token, an OIDC token or
    development headers name a user who may also have a local record: a disabled record refuses
    the request, and a widget token's groups shrink to the record's current groups (a group
    removed after the token was issued stops counting at once). A user with no local record
    is as the token says: the embedding page or the identity provider is the source of truth,
    and widget tokens live minutes.

    :raises AuthError: the user is disabled.
    """
    from kb.services.auth import AuthError

    if identity.via in ("token", "cli", "service"):
        return identity
    with db.session() as s:
        user = s.get(User, identity.user_id)
        if user is None:
            return identity
        if user.disabled:
            raise AuthError(f"user {identity.user_id} is disabled")
        current = {str(g) for g in user.groups or ()}
    if identity.via != "widget":
        return identity
    groups = tuple(g for g in identity.groups if g in current)
    return Identity(identity.user_id, groups, identity.roles, identity.department, identity.via)


class RoleGuard:
    """Dependency requiring one role (admin passes every guard; any role passes employee).

    Every API route depends on exactly one guard: ``Depends(require_role("support"))``.
    """

    def __init__(self, role: str) -> None:
        self.role = role

    def __call__(
        self, request: Request, identity: Annotated[Identity, Depends(get_identity)]
    ) -> Identity:
        from kb.services.auth import has_role

        if not has_role(identity.roles, self.role):
            detail = f"this needs the role {self.role} (you have: {', '.join(identity.roles)})"
            record_denial(request, identity.user_id, 403, detail)
            raise KBError(detail, code="FORBIDDEN")
        return identity

    def __repr__(self) -> str:
        return f"require_role({self.role!r})"


_GUARDS: dict[str, RoleGuard] = {}


def require_role(role: str) -> RoleGuard:
    """The guard for ``role`` (one instance per role, so FastAPI caches it per request)."""
    from kb.services.auth import ROLES

    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return _GUARDS.setdefault(role, RoleGuard(role))


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
    from kb.ingest.worker import IngestWorker

    worker = IngestWorker(settings.embedder, settings.ingest) if settings.ingest.isolated else None
    return IngestRunner(Ingestor(kb, db, worker=worker), roots=settings.allowed_roots())


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


def get_guidelines(request: Request) -> Guidelines:
    """The data-handling guidelines of the app's settings (compiled once, cached)."""
    settings: Settings = request.app.state.settings
    return Guidelines.from_settings(settings.guidelines)


@dataclass(frozen=True, slots=True)
class Auditor:
    """Appends audit entries for one request (its client address filled in)."""

    db: Database
    ip: str | None

    def __call__(
        self, identity: Identity, action: str, target: str | None, **detail: object
    ) -> None:
        """Record that ``identity`` did ``action`` to ``target``."""
        from kb.services.audit import record

        record(
            self.db, actor=identity.user_id, action=action, target=target, detail=detail, ip=self.ip
        )


def get_auditor(request: Request) -> Auditor:
    """The audit log, for the routes that change something."""
    return Auditor(request.app.state.db, client_ip(request))


AuditDep = Annotated[Auditor, Depends(get_auditor)]
StaffDep = Annotated[Identity, Depends(require_role("support"))]
EmployeeDep = Annotated[Identity, Depends(require_role("employee"))]
AdminDep = Annotated[Identity, Depends(require_role("admin"))]
EvaluatorDep = Annotated[Identity, Depends(require_role("evaluator"))]
GuidelinesDep = Annotated[Guidelines, Depends(get_guidelines)]
WriterDep = Annotated[Identity, Depends(require_role("content_owner"))]
RunnerDep = Annotated[IngestRunner, Depends(get_runner)]
DocumentsDep = Annotated[DocumentManager, Depends(get_documents)]
KBDep = Annotated[KnowledgeBase, Depends(get_kb)]
DBDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
