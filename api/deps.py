"""Dependencies: the caller's identity and the services loaded in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from db.engine import Database
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


IdentityDep = Annotated[Identity, Depends(get_identity)]
KBDep = Annotated[KnowledgeBase, Depends(get_kb)]
DBDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
