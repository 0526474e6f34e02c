"""Who am I, widget tokens for embedding pages, and the audit log (issue 8)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from kb.api.deps import AdminDep, AuditDep, DBDep, EmployeeDep
from kb.api.responses import AuditEntryOut
from kb.retrieval.errors import KBError
from kb.services import audit as audit_service
from kb.services.auth import Authenticator, AuthError, has_role

router = APIRouter(prefix="/api", tags=["auth"])

_Name = Annotated[str, Field(min_length=1, max_length=128)]


class WidgetTokenRequest(BaseModel):
    """For whom: empty means the caller; another user needs the role admin (the embedding
    page's backend, holding an admin API token, asks on behalf of its signed-in user)."""

    model_config = ConfigDict(extra="forbid")

    user_id: _Name | None = None
    groups: list[_Name] | None = Field(default=None, max_length=64)
    department: Annotated[str, Field(max_length=128)] | None = None


class WidgetToken(BaseModel):
    """A short-lived bearer token for ``<kb-widget token="...">``."""

    token: str
    token_type: str = "Bearer"
    expires_in: int
    user_id: str


class Me(BaseModel):
    """The caller as the service sees them."""

    user_id: str
    groups: list[str]
    roles: list[str]
    department: str | None
    via: str


@router.get("/me", response_model=Me)
def me(identity: EmployeeDep) -> Me:
    """Who you are: user, groups, roles, department, and how you signed in."""
    return Me(
        user_id=identity.user_id,
        groups=list(identity.groups),
        roles=list(identity.roles),
        department=identity.department,
        via=identity.via,
    )


@router.post("/widget/token", response_model=WidgetToken)
def widget_token(
    body: WidgetTokenRequest, identity: EmployeeDep, request: Request, audit: AuditDep
) -> WidgetToken:
    """Issue a short-lived widget token (role employee only) for you or, as admin, for a user.

    A widget token cannot renew itself: renewal needs a sign-in (API token, OIDC, the embedding
    page's backend), so a disabled user's widget stops at the token's expiry at the latest."""
    if identity.via == "widget":
        raise AuthError(
            "a widget token cannot be renewed with itself: the embedding page asks for a new one "
            "with its own sign-in"
        )
    user_id, groups, department = identity.user_id, identity.groups, identity.department
    for_other = body.user_id is not None and body.user_id != identity.user_id
    if for_other or body.groups is not None or body.department is not None:
        if not has_role(identity.roles, "admin"):
            raise KBError(
                "only an admin (the embedding page's backend) may issue a widget token for "
                "another user or other groups",
                code="FORBIDDEN",
            )
        user_id = body.user_id or user_id
        groups = tuple(sorted(set(body.groups))) if body.groups is not None else ()
        department = body.department
    auth: Authenticator = request.app.state.authenticator
    token, ttl = auth.issue_widget_token(user_id, groups, department)
    audit(identity, "token.widget", user_id, groups=list(groups), expires_in=ttl)
    return WidgetToken(token=token, expires_in=ttl, user_id=user_id)


@router.get("/audit", response_model=list[AuditEntryOut], response_model_exclude_unset=True)
def audit_log(
    _admin: AdminDep,
    db: DBDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The audit log, newest first: ingests, deletions, group changes, published answers,
    exports, token and role changes, denied access."""
    return audit_service.entries(db, action=action, actor=actor, since=since, limit=limit)
