"""Helpers for the issue-8 suites: the app with product auth (no dev headers), local users and
tokens made through the real CLI, and an RSA-signed OIDC provider in a JWKS file."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from kb.api.app import create_app
from kb.cli.main import main
from kb.db.engine import Database
from kb.retrieval.service import KnowledgeBase
from kb.retrieval.settings import AuthSettings, LimitsSettings, OidcSettings, Settings
from tests.serving import serving

ISSUER = "https://idp.example.test/realms/corp"
AUDIENCE = "kb-assistant"


class Provider:
    """A stand-in for the company's OIDC provider: an RSA key and its JWKS."""

    def __init__(self, folder: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:8]
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}
        self.jwks_file = folder / "jwks.json"
        self.jwks_file.write_text(json.dumps(self.jwks), encoding="utf-8")

    def token(self, sub: str = "alice", *, ttl: int = 600, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + ttl}
        body.update(claims)
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})

    def oidc(self) -> OidcSettings:
        return OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=self.jwks_file)


def product_settings(base: Settings, db_url: str, **extra: Any) -> Settings:
    """``base`` with the product's auth defaults (dev headers off) and rate limits off unless
    ``extra`` sets them."""
    update: dict[str, Any] = {
        "database_url": db_url,
        "auth": AuthSettings(),
        "limits": LimitsSettings(user_per_minute=0, address_per_minute=0),
    }
    update.update(extra)
    return base.model_copy(update=update)


@contextmanager
def app_client(kb: KnowledgeBase, db: Database, settings: Settings) -> Iterator[TestClient]:
    """The app over an open knowledge base and database, with ``settings``."""

    with TestClient(create_app(settings, lifespan=serving(kb, db))) as client:
        yield client


def cli(db_url: str, data_dir: Path, *args: str) -> str:
    """Run ``kb ARGS`` against the database; its output, failing on a non-zero exit."""
    env = {"KB_DATABASE_URL": db_url, "KB_DATA_DIR": str(data_dir)}
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def make_user(db_url: str, data_dir: Path, user_id: str, roles: str, groups: str = "") -> str:
    """A local user with a fresh API token, both made through ``kb users``/``kb tokens``."""
    cli(db_url, data_dir, "users", "add", user_id, "--roles", roles, "--groups", groups)
    out = cli(db_url, data_dir, "tokens", "create", user_id, "--json")
    token: str = json.loads(out.strip().splitlines()[-1])["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
