"""Authentication (issue 8): who is calling, from a bearer token; roles and what they allow.

A bearer token is one of three kinds, told apart without trying each:

- a **local API token** (``kbt_...``, made with ``kb tokens create``): looked up by its SHA-256
  in ``api_tokens``; the user's groups, department and roles come from ``users``;
- a **widget token**: a short-lived HS256 JWT this service signs (``iss`` ``kb-widget``) for the
  user of the page that embeds the widget; it carries the role ``employee`` only;
- an **OIDC JWT** from the company's provider: signature checked against its JWKS (URL or file),
  ``iss``, ``aud``, ``exp`` checked; user, groups, department and roles from configurable claims.

Development headers (``X-User-*``) are honoured only with ``auth.dev_headers`` and only on a
loopback address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from sqlalchemy import select

from kb.db.engine import Database
from kb.db.models import ApiToken, User, aware
from kb.retrieval.errors import KBError
from kb.retrieval.settings import AuthSettings, Settings

log = logging.getLogger(__name__)

ROLES = ("employee", "support", "content_owner", "evaluator", "admin")
"""Every role. ``admin`` may do everything; any role includes ``employee``."""
TOKEN_PREFIX = "kbt_"
WIDGET_ISSUER = "kb-widget"
SERVICE_ISSUER = "kb-service"
"""Tokens the CLI signs with the data folder's secret to hand a run to ``kb serve``."""
SERVICE_ROLES = ("content_owner",)
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "testserver", "testclient"}


class AuthError(KBError):
    """The caller is not authenticated: ``401 UNAUTHENTICATED`` with ``WWW-Authenticate``."""

    code = "UNAUTHENTICATED"


@dataclass(frozen=True, slots=True)
class Principal:
    """What a verified token says about its bearer."""

    user_id: str
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    department: str | None
    via: str


def has_role(roles: tuple[str, ...] | list[str], required: str) -> bool:
    """Whether ``roles`` grant ``required``: admin grants all, any known role grants employee."""
    held = set(roles)
    if "admin" in held or required in held:
        return True
    return required == "employee" and bool(held & set(ROLES))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    host = host.strip().strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_dev_headers(auth: AuthSettings, host: str | None = None) -> None:
    """Refuse development headers on a non-loopback address.

    :raises KBError: ``auth.dev_headers`` is on and the service listens beyond loopback.
    """
    host = host or auth.host
    if auth.dev_headers and not is_loopback(host):
        raise KBError(
            f"KB_AUTH__DEV_HEADERS=true trusts X-User-* headers from anyone: refusing to serve on "
            f"{host}. Serve on 127.0.0.1, or turn dev headers off and use tokens",
            code="CONFIGURATION_ERROR",
        )


def hash_token(token: str) -> str:
    """SHA-256 hex of a local API token: what the database stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_api_token() -> tuple[str, str, str]:
    """A fresh local token: ``(token, prefix, sha256)``. Only the hash may be stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token[:12], hash_token(token)


def _split(values: Any) -> tuple[str, ...]:
    if isinstance(values, str):
        values = values.split(",")
    if not isinstance(values, list | tuple):
        return ()
    return tuple(sorted({str(v).strip() for v in values if str(v).strip()}))


class Authenticator:
    """Verifies bearer tokens for one app. Keys and the widget secret load on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.auth = settings.auth
        self._lock = threading.Lock()
        self._secret: bytes | None = None
        self._jwks_client: jwt.PyJWKClient | None = None
        self._jwks_file: tuple[float, jwt.PyJWKSet] | None = None

    # -- widget tokens ------------------------------------------------------------------------

    def widget_secret(self) -> bytes:
        """The HMAC key of widget tokens: the setting, else a random one kept in the data dir."""
        with self._lock:
            if self._secret is None:
                configured = self.auth.widget_secret
                if configured is not None:
                    value = configured.get_secret_value().encode("utf-8")
                    if len(value) < 32:
                        raise KBError(
                            "KB_AUTH__WIDGET_SECRET must be at least 32 bytes",
                            code="CONFIGURATION_ERROR",
                        )
                    self._secret = value
                else:
                    self._secret = _persisted_secret(self.settings.data_dir / "widget_secret")
            return self._secret

    def issue_widget_token(
        self, user_id: str, groups: tuple[str, ...], department: str | None
    ) -> tuple[str, int]:
        """A signed widget token for ``user_id`` and its lifetime in seconds."""
        now = int(time.time())
        ttl = self.auth.widget_ttl_s
        claims = {
            "iss": WIDGET_ISSUER,
            "aud": WIDGET_ISSUER,
            "sub": user_id,
            "groups": list(groups),
            "department": department,
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self.widget_secret(), algorithm="HS256"), ttl

    def issue_service_token(self, user_id: str, ttl_s: int = 600) -> str:
        """A token for ``kb ingest`` handing its run to the service: role content_owner.

        Only a process that can read the data folder's secret (the service's own machine
        account) can sign one.
        """
        now = int(time.time())
        claims = {
            "iss": SERVICE_ISSUER,
            "aud": SERVICE_ISSUER,
            "sub": user_id,
            "iat": now,
            "exp": now + ttl_s,
        }
        return jwt.encode(claims, self.widget_secret(), algorithm="HS256")

    def _widget(self, token: str, issuer: str = WIDGET_ISSUER) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self.widget_secret(),
                algorithms=["HS256"],
                audience=issuer,
                issuer=issuer,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the widget token has expired: ask the page for a new one") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid widget token ({exc})") from exc
        service = issuer == SERVICE_ISSUER
        return Principal(
            user_id=str(claims["sub"]),
            groups=_split(claims.get("groups") or []),
            roles=SERVICE_ROLES if service else ("employee",),
            department=claims.get("department") or None,
            via="service" if service else "widget",
        )

    # -- OIDC ---------------------------------------------------------------------------------

    def _oidc_key(self, token: str) -> Any:
        oidc = self.auth.oidc
        if oidc.jwks_file is not None:
            path = Path(oidc.jwks_file)
            try:
                mtime = path.stat().st_mtime
                if self._jwks_file is None or self._jwks_file[0] != mtime:
                    data = json.loads(path.read_text(encoding="utf-8"))
                    self._jwks_file = (mtime, jwt.PyJWKSet.from_dict(data))
            except (OSError, ValueError, jwt.PyJWTError) as exc:
                raise KBError(f"cannot read the OIDC key set {path}: {exc}") from exc
            kid = jwt.get_unverified_header(token).get("kid")
            keys = self._jwks_file[1].keys
            for key in keys:
                if kid is None or key.key_id == kid:
                    return key.key
            raise AuthError("the token is signed with a key the identity provider does not list")
        if oidc.jwks_url:
            with self._lock:
                if self._jwks_client is None:
                    self._jwks_client = jwt.PyJWKClient(oidc.jwks_url, lifespan=3600, timeout=10)
            try:
                return self._jwks_client.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientConnectionError as exc:
                raise KBError(
                    f"the identity provider's keys cannot be fetched ({exc})", code="NOT_READY"
                ) from exc
        raise AuthError("OIDC is not configured (KB_AUTH__OIDC__JWKS_URL or __JWKS_FILE)")

    def _oidc(self, token: str) -> Principal:
        oidc = self.auth.oidc
        if not oidc.issuer:
            raise AuthError("unknown bearer token (OIDC is not configured)")
        try:
            key = self._oidc_key(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=oidc.algorithms,
                audience=oidc.audience,
                issuer=oidc.issuer,
                leeway=oidc.leeway_s,
                options={"require": ["exp", "iss"], "verify_aud": oidc.audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the token has expired: sign in again") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token ({exc})") from exc
        user = claims.get(oidc.user_claim)
        if not user:
            raise AuthError(f"the token has no {oidc.user_claim!r} claim")
        roles = _split(claims.get(oidc.roles_claim) or []) or tuple(oidc.default_roles)
        department = claims.get(oidc.department_claim)
        return Principal(
            user_id=str(user),
            groups=_split(claims.get(oidc.groups_claim) or []),
            roles=roles,
            department=str(department) if department else None,
            via="oidc",
        )

    # -- local tokens -------------------------------------------------------------------------

    def _local(self, token: str, db: Database) -> Principal:
        now = datetime.now(UTC)
        with db.session() as s:
            row = s.execute(
                select(ApiToken, User)
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == hash_token(token))
            ).first()
            if row is None:
                raise AuthError("unknown API token")
            tok, user = row
            if tok.revoked_at is not None:
                raise AuthError("the API token has been revoked")
            expires = tok.expires_at
            if expires is not None and aware(expires) <= now:
                raise AuthError("the API token has expired")
            if user.disabled:
                raise AuthError(f"user {user.id} is disabled")
            last = tok.last_used_at
            # One write a minute at most: a busy client must not turn every call into a write.
            if last is None or (now - aware(last)).total_seconds() > 60:
                tok.last_used_at = now
            return Principal(
                user_id=user.id,
                groups=_split(user.groups),
                roles=_split(user.roles),
                department=user.department,
                via="token",
            )

    def verify(self, token: str, db: Database) -> Principal:
        """The bearer of ``token``.

        :raises AuthError: the token is unknown, malformed, expired, revoked or badly signed.
        """
        token = token.strip()
        if not token:
            raise AuthError("empty bearer token")
        if token.startswith(TOKEN_PREFIX):
            return self._local(token, db)
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed bearer token ({exc.__class__.__name__})") from exc
        if unverified.get("iss") in (WIDGET_ISSUER, SERVICE_ISSUER):
            return self._widget(token, unverified["iss"])
        return self._oidc(token)


def _persisted_secret(path: Path) -> bytes:
    """Read the secret at ``path``, creating it (mode 0600) the first time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text(encoding="ascii").strip()
        if len(value) < 32:
            raise KBError(f"the widget secret in {path} is too short: delete it to renew") from None
        return value.encode("ascii")
    value = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(value + "\n")
    log.info("generated the widget token secret in %s", path)
    return value.encode("ascii")
