"""``kb users`` and ``kb tokens``: local accounts and API tokens for the embedded default.

Tokens are printed once, at creation; the database keeps their SHA-256 only. Every change is
written to the audit log with the operating-system user as the actor.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from kb.cli.common import audit, open_db

ROLE_HELP = "Comma-separated: employee, support, content_owner, evaluator, admin."


def _names(value: str) -> list[str]:
    return sorted({v.strip() for v in value.split(",") if v.strip()})


def _roles(value: str) -> list[str]:
    from kb.services.auth import ROLES

    roles = _names(value)
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise click.ClickException(
            f"unknown role(s) {', '.join(unknown)}: choose from {', '.join(ROLES)}"
        )
    return roles


def _user_json(u: Any) -> dict[str, object]:
    return {
        "id": u.id,
        "display_name": u.display_name,
        "department": u.department,
        "groups": u.groups,
        "roles": u.roles,
        "disabled": u.disabled,
        "created_at": u.created_at.isoformat(),
    }


@click.group()
def users() -> None:
    """Local users: who may sign in with an API token, their groups and roles."""


@users.command("add")
@click.argument("user_id")
@click.option("--name", default="", help="Display name.")
@click.option("--department", default=None)
@click.option("--groups", default="", help="Comma-separated access groups.")
@click.option("--roles", default="employee", show_default=True, help=ROLE_HELP)
def users_add(user_id: str, name: str, department: str | None, groups: str, roles: str) -> None:
    """Create a user."""
    from kb.db.models import User

    user_id = user_id.strip()
    if not user_id or len(user_id) > 128:
        raise click.ClickException("the user id must be 1 to 128 characters")
    role_list = _roles(roles)
    with open_db() as db:
        with db.session() as s:
            if s.get(User, user_id) is not None:
                raise click.ClickException(f"user {user_id} exists: use `kb users set-roles`")
            s.add(
                User(
                    id=user_id,
                    display_name=name,
                    department=department,
                    groups=_names(groups),
                    roles=role_list,
                )
            )
        audit(db, "user.add", user_id, groups=_names(groups), roles=role_list)
    click.echo(f"user {user_id} added (roles: {', '.join(role_list) or 'none'})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
def users_list(as_json: bool) -> None:
    """List users."""
    from sqlalchemy import select

    from kb.db.models import User

    with open_db() as db, db.session() as s:
        found = list(s.execute(select(User).order_by(User.id)).scalars())
    if as_json:
        click.echo(json.dumps([_user_json(u) for u in found], ensure_ascii=False, indent=2))
        return
    for u in found:
        state = " (disabled)" if u.disabled else ""
        click.echo(
            f"{u.id}{state}  roles={','.join(u.roles)}  groups={','.join(u.groups)}"
            f"  department={u.department or '-'}"
        )


@users.command("set-roles")
@click.argument("user_id")
@click.option("--roles", required=True, help=ROLE_HELP)
@click.option("--groups", default=None, help="Also replace the access groups (comma-separated).")
def users_set_roles(user_id: str, roles: str, groups: str | None) -> None:
    """Replace a user's roles (and, with --groups, access groups)."""
    from kb.db.models import User

    role_list = _roles(roles)
    with open_db() as db:
        with db.session() as s:
            user = s.get(User, user_id)
            if user is None:
                raise click.ClickException(f"no user {user_id}")
            before, before_groups = list(user.roles), list(user.groups)
            user.roles = role_list
            if groups is not None:
                user.groups = _names(groups)
        audit(db, "user.roles", user_id, before=before, after=role_list)
        if groups is not None:
            audit(db, "user.groups", user_id, before=before_groups, after=_names(groups))
    click.echo(f"user {user_id}: roles {', '.join(role_list) or 'none'}")


@users.command("disable")
@click.argument("user_id")
def users_disable(user_id: str) -> None:
    """Disable a user: their tokens stop working at once."""
    from kb.db.models import User

    with open_db() as db:
        with db.session() as s:
            user = s.get(User, user_id)
            if user is None:
                raise click.ClickException(f"no user {user_id}")
            user.disabled = True
        audit(db, "user.disable", user_id)
    click.echo(f"user {user_id} disabled")


@click.group()
def tokens() -> None:
    """Local API tokens (``Authorization: Bearer kbt_...``), stored hashed."""


@tokens.command("create")
@click.argument("user_id")
@click.option("--name", default="", help="What the token is for.")
@click.option("--days", type=click.IntRange(min=1), default=None, help="Expire after N days.")
@click.option("--json", "as_json", is_flag=True)
def tokens_create(user_id: str, name: str, days: int | None, as_json: bool) -> None:
    """Create a token for USER_ID and print it, once."""
    from kb.db.models import ApiToken, User
    from kb.services.auth import new_api_token

    token, prefix, digest = new_api_token()
    token_id = str(uuid.uuid4())
    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    with open_db() as db:
        with db.session() as s:
            user = s.get(User, user_id)
            if user is None:
                raise click.ClickException(f"no user {user_id}: `kb users add {user_id}` first")
            if user.disabled:
                raise click.ClickException(f"user {user_id} is disabled")
            s.add(
                ApiToken(
                    id=token_id,
                    user_id=user_id,
                    name=name,
                    token_hash=digest,
                    prefix=prefix,
                    expires_at=expires,
                )
            )
        audit(db, "token.create", user_id, token_id=token_id, name=name, prefix=prefix)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "id": token_id,
                    "user_id": user_id,
                    "token": token,
                    "expires_at": expires.isoformat() if expires else None,
                }
            )
        )
        return
    click.echo(token)
    click.echo(f"token {token_id} for {user_id}: shown once, store it now", err=True)


@tokens.command("list")
@click.option("--user", "user_id", default=None, help="Only this user's tokens.")
@click.option("--json", "as_json", is_flag=True)
def tokens_list(user_id: str | None, as_json: bool) -> None:
    """List tokens (prefix, owner, created, last used, expiry, revoked); never the token."""
    from sqlalchemy import select

    from kb.db.models import ApiToken

    q = select(ApiToken).order_by(ApiToken.created_at)
    if user_id:
        q = q.where(ApiToken.user_id == user_id)
    with open_db() as db, db.session() as s:
        rows = [
            {
                "id": t.id,
                "user_id": t.user_id,
                "name": t.name,
                "prefix": t.prefix,
                "created_at": t.created_at.isoformat(),
                "expires_at": t.expires_at.isoformat() if t.expires_at else None,
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            }
            for t in s.execute(q).scalars()
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "revoked" if r["revoked_at"] else "active"
        click.echo(
            f"{r['id']}  {r['prefix']}…  {r['user_id']}  {state}  {r['name']}"
            f"  last used {r['last_used_at'] or 'never'}"
        )


@tokens.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by its id (from `kb tokens list`)."""
    from kb.db.models import ApiToken

    with open_db() as db:
        with db.session() as s:
            tok = s.get(ApiToken, token_id)
            if tok is None:
                raise click.ClickException(f"no token {token_id}")
            if tok.revoked_at is None:
                tok.revoked_at = datetime.now(UTC)
            owner = tok.user_id
        audit(db, "token.revoke", owner, token_id=token_id)
    click.echo(f"token {token_id} revoked")
