"""Real authentication and authorisation (issue 8), with the product defaults: no dev headers.

Every route in the OpenAPI schema rejects a missing, a bad and an expired token and an
insufficient role; local tokens come from the real CLI, OIDC JWTs are RSA-signed and checked
against a JWKS file and a JWKS URL served on loopback.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner
from fastapi.routing import APIRoute
from sqlalchemy import select, text

from kb.api.app import create_app
from kb.api.deps import RoleGuard
from kb.cli.main import main
from kb.db.engine import Database
from kb.db.models import ApiToken
from kb.retrieval.errors import KBError
from kb.retrieval.settings import AuthSettings, LimitsSettings, OidcSettings
from kb.services.auth import ROLES, WIDGET_ISSUER, hash_token
from tests.integration._auth import (
    AUDIENCE,
    ISSUER,
    Provider,
    app_client,
    bearer,
    cli,
    make_user,
    product_settings,
)

pytestmark = pytest.mark.integration

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),  # operational, like the probes; KB_METRICS__TOKEN guards it (issue 24)
    ("GET", "/"),
    ("GET", "/console"),
    ("GET", "/content"),
    ("GET", "/evaluation"),
    ("GET", "/vocabulary"),
    ("GET", "/demo"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("HEAD", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}
"""Routes anyone may call: probes, the static pages (they hold no data) and the API docs."""


@pytest.fixture
def env(sample_kb, tmp_path):
    """The sample knowledge base behind product auth, a fresh database and an OIDC provider."""
    kb, _, _ = sample_kb
    url = f"sqlite:///{tmp_path / 'auth.sqlite3'}"
    db = Database(url)
    db.migrate()
    provider = Provider(tmp_path)
    settings = product_settings(
        kb.settings,
        url,
        data_dir=tmp_path,
        auth=AuthSettings(oidc=provider.oidc(), cors_origins=["https://intranet.example"]),
    )
    tokens = {
        "none": make_user(url, tmp_path, "nobody", ""),
        # The content owner belongs to the group it gives its documents (issue 19).
        **{
            role: make_user(
                url, tmp_path, f"u-{role}", role, "facilities" * (role == "content_owner")
            )
            for role in ROLES
        },
    }
    with app_client(kb, db, settings) as client:
        yield client, db, url, tmp_path, provider, tokens
    db.dispose()


def _guards(route: APIRoute) -> list[str]:
    found: list[str] = []

    def walk(dep):
        if isinstance(dep.call, RoleGuard):
            found.append(dep.call.role)
        for sub in dep.dependencies:
            walk(sub)

    walk(route.dependant)
    return sorted(set(found))


def _api_routes(routes):
    """Every APIRoute, also inside included routers (FastAPI 0.16x keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)


def _route_roles(app) -> dict[tuple[str, str], str]:
    roles: dict[tuple[str, str], str] = {}
    for route in _api_routes(app.routes):
        for method in route.methods:
            if (method, route.path) in PUBLIC:
                assert not _guards(route), f"{method} {route.path} is public by the list"
                continue
            guards = _guards(route)
            assert len(guards) == 1, f"{method} {route.path} must declare one role: {guards}"
            roles[(method, route.path)] = guards[0]
    return roles


def _insufficient(role: str) -> str:
    return {"employee": "none", "admin": "support"}.get(role, "employee")


def test_every_route_declares_exactly_one_role(env):
    client = env[0]
    roles = _route_roles(client.app)
    assert roles[("POST", "/api/ask")] == "employee"
    assert roles[("GET", "/api/queue")] == "support"
    assert roles[("POST", "/api/documents")] == "content_owner"
    assert roles[("GET", "/api/eval/runs")] == "evaluator"
    assert roles[("GET", "/api/audit")] == "admin"


def test_every_route_in_the_openapi_schema_rejects_bad_credentials(env):
    client, db, url, _, provider, tokens = env
    roles = _route_roles(client.app)
    expired_local = make_user(url, env[3], "expired-user", "admin")
    with db.session() as s:
        tok = s.execute(
            select(ApiToken).where(ApiToken.token_hash == hash_token(expired_local))
        ).scalar_one()
        tok.expires_at = tok.created_at.replace(year=2000)
    expired_oidc = provider.token("alice", ttl=-3600, roles=["admin"])
    bad = {
        "missing": {},
        "bad local": bearer("kbt_" + "x" * 43),
        "garbage": bearer("not-a-token"),
        "forged": bearer(jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x"}, "g" * 40)),
        "not bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
        "dev headers": {"X-User-Id": "eve", "X-User-Roles": "admin"},
        "expired local": bearer(expired_local),
        "expired oidc": bearer(expired_oidc),
    }
    schema = client.get("/openapi.json").json()
    checked = 0
    for path, item in schema["paths"].items():
        concrete = path.replace("{group_id}", "1").replace("{run_id}", "x").replace("{", "")
        concrete = concrete.replace("}", "")
        for method in item:
            if (method.upper(), path) in PUBLIC:
                assert client.request(method, concrete).status_code == 200
                continue
            role = roles[(method.upper(), path)]
            for why, headers in bad.items():
                resp = client.request(method, concrete, headers=headers, json={})
                assert resp.status_code == 401, (method, path, why, resp.text)
                assert resp.json()["error_code"] == "UNAUTHENTICATED"
                assert resp.headers["www-authenticate"].startswith("Bearer")
            low = tokens[_insufficient(role)]
            resp = client.request(method, concrete, headers=bearer(low), json={})
            assert resp.status_code == 403, (method, path, role, resp.text)
            assert resp.json()["error_code"] == "FORBIDDEN"
            ok = client.request(method, concrete, headers=bearer(tokens[role]), json={})
            assert ok.status_code not in (401, 403), (method, path, role, ok.text)
            checked += 1
    assert checked >= 25


def test_local_tokens_from_the_cli(env):
    client, db, url, data, _, _ = env
    token = make_user(url, data, "kenji", "support", groups="support-internal")
    me = client.get("/api/me", headers=bearer(token)).json()
    assert me == {
        "user_id": "kenji",
        "groups": ["support-internal"],
        "roles": ["support"],
        "department": None,
        "via": "token",
    }
    # Stored hashed: the token itself is nowhere in the database.
    with db.session() as s:
        rows = s.execute(select(ApiToken).where(ApiToken.user_id == "kenji")).scalars().all()
        assert [r.token_hash for r in rows] == [hash_token(token)]
        assert rows[0].last_used_at is not None
    listing = cli(url, data, "tokens", "list", "--user", "kenji", "--json")
    assert token not in listing and token[:12] in listing
    assert client.get("/api/queue", headers=bearer(token)).status_code == 200

    cli(url, data, "users", "set-roles", "kenji", "--roles", "employee")
    assert client.get("/api/queue", headers=bearer(token)).status_code == 403
    cli(url, data, "tokens", "revoke", rows[0].id)
    revoked = client.get("/api/me", headers=bearer(token))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]

    second = json.loads(cli(url, data, "tokens", "create", "kenji", "--json"))["token"]
    assert client.get("/api/me", headers=bearer(second)).status_code == 200
    cli(url, data, "users", "disable", "kenji")
    assert client.get("/api/me", headers=bearer(second)).status_code == 401

    runner = CliRunner()
    env_vars = {"KB_DATABASE_URL": url, "KB_DATA_DIR": str(data)}
    bad_role = runner.invoke(main, ["users", "add", "x", "--roles", "wizard"], env=env_vars)
    assert bad_role.exit_code == 1 and "unknown role" in bad_role.output
    missing = runner.invoke(main, ["tokens", "create", "ghost"], env=env_vars)
    assert missing.exit_code == 1 and "no user ghost" in missing.output


def test_oidc_jwts_from_a_jwks_file(env):
    client, _, _, _, provider, _ = env
    token = provider.token(
        "hana", groups=["support-internal"], department="support", roles=["support"]
    )
    me = client.get("/api/me", headers=bearer(token)).json()
    assert me["user_id"] == "hana" and me["groups"] == ["support-internal"]
    assert me["roles"] == ["support"] and me["department"] == "support" and me["via"] == "oidc"
    plain = client.get("/api/me", headers=bearer(provider.token("taro"))).json()
    assert plain["roles"] == ["employee"] and plain["groups"] == []

    other = Provider(env[3] / "other") if (env[3] / "other").mkdir() is None else None
    assert other is not None
    refused = {
        "wrong audience": provider.token(aud="someone-else"),
        "wrong issuer": provider.token(iss="https://evil.example"),
        "expired": provider.token(ttl=-120),
        "unknown key": other.token(),
        "no exp": jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "x"},
            provider.key,
            algorithm="RS256",
            headers={"kid": provider.kid},
        ),
    }
    for why, bad in refused.items():
        resp = client.get("/api/me", headers=bearer(bad))
        assert resp.status_code == 401, (why, resp.text)


def test_oidc_jwts_from_a_jwks_url_on_loopback(sample_kb, tmp_path):
    kb, _, _ = sample_kb
    provider = Provider(tmp_path)
    body = json.dumps(provider.jwks).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    db = Database(url)
    db.migrate()
    oidc = OidcSettings(
        issuer=ISSUER, audience=AUDIENCE, jwks_url=f"http://127.0.0.1:{server.server_port}/jwks"
    )
    settings = product_settings(kb.settings, url, data_dir=tmp_path, auth=AuthSettings(oidc=oidc))
    try:
        with app_client(kb, db, settings) as client:
            ok = client.get("/api/me", headers=bearer(provider.token("jiro", groups=["hr"])))
            assert ok.status_code == 200 and ok.json()["groups"] == ["hr"]
            forged = Provider(tmp_path / "f") if (tmp_path / "f").mkdir() is None else None
            assert forged is not None
            assert client.get("/api/me", headers=bearer(forged.token())).status_code == 401
    finally:
        server.shutdown()
        db.dispose()


def test_widget_tokens(env):
    client, _, _, data, _, tokens = env
    own = client.post("/api/widget/token", json={}, headers=bearer(tokens["employee"]))
    assert own.status_code == 200
    body = own.json()
    assert body["user_id"] == "u-employee" and 30 <= body["expires_in"] <= 900
    widget = bearer(body["token"])
    assert client.get("/api/me", headers=widget).json()["via"] == "widget"
    asked = client.post(
        "/api/ask", json={"question": "How do I replace the toner?"}, headers=widget
    )
    assert asked.status_code == 200
    # A widget token is an employee's, whatever its issuer's roles.
    admin_widget = client.post("/api/widget/token", json={}, headers=bearer(tokens["admin"]))
    assert client.get("/api/queue", headers=bearer(admin_widget.json()["token"])).status_code == 403

    # The embedding page's backend (admin token) asks on behalf of its signed-in user.
    issued = client.post(
        "/api/widget/token",
        json={"user_id": "mika", "groups": ["support-internal"], "department": "support"},
        headers=bearer(tokens["admin"]),
    ).json()
    me = client.get("/api/me", headers=bearer(issued["token"])).json()
    assert me["user_id"] == "mika" and me["groups"] == ["support-internal"]
    assert me["roles"] == ["employee"]
    # Nobody else may widen their own access through it.
    widen = client.post(
        "/api/widget/token",
        json={"groups": ["support-internal"]},
        headers=bearer(tokens["support"]),
    )
    assert widen.status_code == 403

    secret = (data / "widget_secret").read_text().strip().encode()
    now = int(time.time())
    claims = {"iss": WIDGET_ISSUER, "aud": WIDGET_ISSUER, "sub": "mika", "iat": now - 2000}
    expired = jwt.encode({**claims, "exp": now - 1000}, secret, algorithm="HS256")
    resp = client.get("/api/me", headers=bearer(expired))
    assert resp.status_code == 401 and "expired" in resp.json()["detail"]
    forged = jwt.encode({**claims, "exp": now + 600}, b"x" * 48, algorithm="HS256")
    assert client.get("/api/me", headers=bearer(forged)).status_code == 401


def test_cors_allows_the_listed_origins_only(env, sample_kb, tmp_path):
    client = env[0]
    pre = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    ok = client.options("/api/ask", headers={"Origin": "https://intranet.example", **pre})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://intranet.example"
    denied = client.options("/api/ask", headers={"Origin": "https://evil.example", **pre})
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers
    simple = client.get("/api/me", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers

    kb, _, _ = sample_kb
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    db = Database(url)
    db.migrate()
    with app_client(kb, db, product_settings(kb.settings, url, data_dir=tmp_path)) as empty:
        for origin in ("https://intranet.example", "http://localhost:8000"):
            resp = empty.options("/api/ask", headers={"Origin": origin, **pre})
            assert resp.status_code == 400 and "access-control-allow-origin" not in resp.headers
    db.dispose()


def test_dev_headers_are_off_by_default_and_loopback_only(env, sample_kb, tmp_path):
    client = env[0]
    assert AuthSettings().dev_headers is False
    resp = client.post("/api/ask", json={"question": "toner"}, headers={"X-User-Id": "eve"})
    assert resp.status_code == 401

    kb, _, _ = sample_kb
    on = AuthSettings(dev_headers=True, host="0.0.0.0")
    with pytest.raises(KBError, match="refusing to serve on 0.0.0.0"):
        create_app(kb.settings.model_copy(update={"auth": on}))
    runner = CliRunner()
    env_vars = {"KB_DATA_DIR": str(tmp_path), "KB_AUTH__DEV_HEADERS": "true"}
    refused = runner.invoke(main, ["serve", "--host", "0.0.0.0", "--port", "8797"], env=env_vars)
    assert refused.exit_code == 1 and "refusing to serve on 0.0.0.0" in refused.output


def test_rate_limits_answer_429_with_retry_after(sample_kb, tmp_path):
    kb, _, _ = sample_kb
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    db = Database(url)
    db.migrate()
    token = make_user(url, tmp_path, "busy", "employee")
    limits = LimitsSettings(user_per_minute=60, user_burst=3, address_per_minute=0)
    settings = product_settings(kb.settings, url, data_dir=tmp_path, limits=limits)
    with app_client(kb, db, settings) as client:
        codes = [client.get("/api/me", headers=bearer(token)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        resp = client.get("/api/me", headers=bearer(token))
        assert resp.json()["error_code"] == "RATE_LIMITED"
        assert 1 <= int(resp.headers["retry-after"]) <= 2
        time.sleep(1.1)
        assert client.get("/api/me", headers=bearer(token)).status_code == 200

    # One token every 10 s: the third request is refused however slowly the first two ran.
    limits = LimitsSettings(user_per_minute=0, address_per_minute=6, address_burst=2)
    settings = product_settings(kb.settings, url, data_dir=tmp_path, limits=limits)
    with app_client(kb, db, settings) as client:
        codes = [client.get("/api/me").status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        assert client.get("/healthz").status_code == 200  # probes are not limited
    db.dispose()


def test_body_and_question_size_limits(env, sample_kb, tmp_path):
    client, _, _, _, _, tokens = env
    auth = bearer(tokens["employee"])
    long_question = client.post("/api/ask", json={"question": "a" * 2001}, headers=auth)
    assert long_question.status_code == 422
    assert long_question.json()["error_code"] == "VALIDATION_ERROR"

    kb, _, _ = sample_kb
    url = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    db = Database(url)
    db.migrate()
    token = make_user(url, tmp_path, "big", "employee")
    limits = LimitsSettings(user_per_minute=0, address_per_minute=0, max_body_bytes=2048)
    settings = product_settings(kb.settings, url, data_dir=tmp_path, limits=limits)
    with app_client(kb, db, settings) as small:
        big = small.post("/api/ask", json={"question": "x" * 5000}, headers=bearer(token))
        assert big.status_code == 413 and big.json()["error_code"] == "PAYLOAD_TOO_LARGE"

        def chunks():
            yield b'{"question": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        streamed = small.post(
            "/api/ask",
            content=chunks(),
            headers={**bearer(token), "Content-Type": "application/json"},
        )
        assert streamed.status_code == 413
        fine = small.post("/api/ask", json={"question": "toner"}, headers=bearer(token))
        assert fine.status_code == 200
    db.dispose()


def test_audit_log_records_actions_and_is_admin_only_and_append_only(env):
    client, db, url, data, _, tokens = env
    owner, support, admin = (bearer(tokens[r]) for r in ("content_owner", "support", "admin"))
    up = client.post(
        "/api/documents",
        files={"file": ("notes.md", b"# Notes\n\nThe lobby opens at 8:30.\n", "text/markdown")},
        data={"groups": "facilities"},
        headers=owner,
    )
    assert up.status_code == 201, up.text
    doc_id = up.json()["documents"][0]["id"]
    assert client.patch(f"/api/documents/{doc_id}", json={"groups": []}, headers=owner).is_success
    assert client.delete(f"/api/documents/{doc_id}", headers=owner).status_code == 204
    ingest = client.post("/api/ingest", json={"path": str(data / "nowhere")}, headers=owner)
    assert ingest.status_code in (202, 403, 422)  # 403: outside KB_INGEST_ROOTS (issue 20)
    assert client.get("/api/analytics/export.csv", headers=support).status_code == 200
    client.post("/api/widget/token", json={}, headers=support)
    client.get("/api/queue", headers=bearer(tokens["employee"]))  # denied
    client.get("/api/me", headers=bearer("kbt_unknown"))  # denied

    assert client.get("/api/audit", headers=support).status_code == 403
    entries = client.get("/api/audit", params={"limit": 500}, headers=admin).json()
    actions = {e["action"] for e in entries}
    expected = {
        "user.add",
        "token.create",
        "document.upload",
        "document.groups",
        "document.delete",
        "analytics.export",
        "token.widget",
        "access.denied",
    }
    assert expected <= actions, expected - actions
    if ingest.status_code == 202:
        assert "ingest.start" in actions
    upload = next(e for e in entries if e["action"] == "document.upload")
    assert upload["actor"] == "u-content_owner" and upload["target"] == doc_id
    assert upload["ip"] == "testclient"
    denied = [e for e in entries if e["action"] == "access.denied"]
    assert {e["detail"]["status"] for e in denied} >= {401, 403}
    only = client.get("/api/audit", params={"action": "document.delete"}, headers=admin).json()
    assert [e["target"] for e in only] == [doc_id]

    cli(url, data, "users", "set-roles", "u-support", "--roles", "support,evaluator")
    roles = client.get("/api/audit", params={"action": "user.roles"}, headers=admin).json()
    assert roles[0]["detail"]["after"] == ["evaluator", "support"]
    assert roles[0]["actor"].startswith("cli:")

    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() >= len(entries)


def test_audit_log_is_append_only_on_postgresql(postgres_url):
    db = Database(postgres_url)
    db.migrate()
    try:
        from kb.services.audit import record

        record(db, actor="a", action="user.add", target="b", strict=True)
        for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
            with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        db.dispose()


def test_kb_ingest_hands_over_with_a_service_token_not_headers(env):
    """The CLI signs its hand-over with the data folder's secret; a stranger cannot."""
    client, _, _, data, _, _ = env
    from kb.services.auth import Authenticator

    token = Authenticator(client.app.state.settings).issue_service_token("operator")
    me = client.get("/api/me", headers=bearer(token)).json()
    assert me["roles"] == ["content_owner"] and me["via"] == "service"
    assert Path(data / "widget_secret").stat().st_mode & 0o077 == 0


@pytest.mark.slow
def test_a_local_kb_ingest_is_audited(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "note.md").write_text("# Note\n\nThe canteen opens at noon.\n", encoding="utf-8")
    env_vars = {"KB_DATA_DIR": str(tmp_path / "var"), "KB_EMBEDDER__MODELS": '["hash"]'}
    result = CliRunner().invoke(main, ["ingest", str(folder)], env=env_vars)
    assert result.exit_code == 0, result.output
    db = Database(f"sqlite:///{tmp_path / 'var' / 'kb.sqlite3'}")
    try:
        from kb.services.audit import entries

        runs = entries(db, action="ingest.run")
        assert len(runs) == 1 and runs[0]["target"] == str(folder.resolve())
        assert runs[0]["detail"]["added"] == 1 and runs[0]["actor"].startswith("cli:")
    finally:
        db.dispose()
