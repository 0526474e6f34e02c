"""Leak suite over every route (issue 19): cases generated from the OpenAPI schema.

Three marker sentences are seeded behind the access group ``finance``: one in a restricted
document, one in a restricted staff answer, and one in a restricted question (a question
answered from the restricted document, then sent to the queue with a thumbs-down). Every
operation of the schema is then called by every role, as a member and as a non-member of
``finance``: no response body a non-member gets (JSON, CSV, HTML, server-sent events) holds a
marker, every write a non-member attempts leaves the restricted document, its passages and the
staff answer as they were, and members do see each marker (a product that refused everything
would fail). A new route is covered without editing this file; a new path parameter fails
loudly until it is given a value below.

Runs on SQLite and, where it answers, PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kb.db.models import DocumentRecord, DocumentVersion, MemoryEntry, QueueGroup, QueueItem
from kb.ingest.pipeline import Ingestor
from kb.retrieval.models import AccessFilter
from tests.conftest import postgres_schema
from tests.integration._auth import app_client, bearer, cli, make_user, product_settings
from tests.integration._kb import open_kb, settings_for

pytestmark = pytest.mark.integration

GROUP = "finance"
ROLES = ("employee", "support", "content_owner", "evaluator", "admin")

DOC_MARKER = "The Quillfeather ledger reconciliation code is QX-4471-TANGERINE."
FOLDER_MARKER = "Quillfeather payroll batches close at 17:40 on the Velvetmoss calendar."
QUESTION = "What is the Quillfeather ledger reconciliation code?"
ANSWER_MARKER = "Staff note: reconcile with the Marigold-9 worksheet before filing."
MARKERS = {
    "document": DOC_MARKER,
    "folder": FOLDER_MARKER,
    "question": QUESTION,
    "answer": ANSWER_MARKER,
}
SEEN_BY_MEMBERS = ("document", "question", "answer")
"""The folder's marker is there to be refused (a sync by a non-member); the ids of all three
restricted documents are checked as well."""
# What outsiders ask: it probes the restricted document without repeating the marker question.
PROBE = "Tell me the reconciliation code of the Quillfeather ledger"

RESTRICTED_DOC = (
    "# Quillfeather ledger\n\n## Reconciliation\n\n"
    f"{DOC_MARKER} Finance enters it in the month-end close form before the books are "
    "locked.\n"
)
PUBLIC_DOCS = {
    "printer.md": (
        "# Printer guide\n\n## Toner\n\nOpen the front cover, pull the old toner cartridge out "
        "and slide the new one in until it clicks.\n"
    ),
    "vpn.md": (
        "# VPN\n\n## Connecting\n\nStart the VPN client, choose the Tokyo gateway and sign in "
        "with your company account.\n"
    ),
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('route-leaks-db') / 'kb.sqlite3'}"
        return
    with postgres_schema() as url:
        yield url


class Env:
    """The seeded knowledge base, its app, and one user per role and membership."""

    def __init__(self, client: TestClient, kb: Any, db: Any, root: Path) -> None:
        self.client, self.kb, self.db, self.root = client, kb, db, root
        self.tokens: dict[tuple[str, bool], str] = {}
        self.ids: dict[str, str] = {}

    def who(self, role: str, member: bool) -> dict[str, str]:
        return bearer(self.tokens[(role, member)])

    def snapshot(self) -> dict[str, Any]:
        """What a refused write must leave exactly as it was."""
        doc_id, answer_id = self.ids["document_id"], self.ids["answer_document_id"]
        out: dict[str, Any] = {}
        with self.db.session() as s:
            for key, rid in (("document", doc_id), ("answer", answer_id)):
                rec = s.get(DocumentRecord, rid)
                assert rec is not None, key
                out[key] = (rec.groups, rec.version, rec.hash, rec.chunk_count, rec.status)
                out[key + "_versions"] = s.execute(
                    select(DocumentVersion.version, DocumentVersion.hash)
                    .where(DocumentVersion.document_id == rid)
                    .order_by(DocumentVersion.id)
                ).all()
            group = s.get(QueueGroup, int(self.ids["group_id"]))
            assert group is not None
            out["group"] = (group.state, group.assignee, group.representative, group.answer)
        for key, rid in (("points", doc_id), ("answer_points", answer_id)):
            out[key] = sorted(
                (p.chunk.point_id, p.chunk.text, p.chunk.groups)
                for p in self.kb.store.document_chunks(rid)
            )
        out["file"] = sorted(
            (p.name, p.read_bytes())
            for p in (self.root / "var" / "files").rglob("*")
            if p.is_file()
        )
        return out


@pytest.fixture(scope="module")
def env(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("route-leaks")
    public, folder = root / "public", root / "restricted-folder"
    public.mkdir()
    folder.mkdir()
    for name, text in PUBLIC_DOCS.items():
        (public / name).write_text(text, encoding="utf-8")
    (folder / "payroll.md").write_text(
        f"# Payroll calendar\n\n## Cut-off\n\n{FOLDER_MARKER}\n", encoding="utf-8"
    )
    (folder / ".kbmeta.json").write_text(json.dumps({"groups": [GROUP]}), encoding="utf-8")
    settings = settings_for(root / "var", database_url=db_url, ingest_roots=[root])
    with open_kb(settings) as (kb, db):
        ingestor = Ingestor(kb, db)
        for path in (public, folder):
            report = ingestor.sync_folder(path)
            assert not [f for f in report.files if f.outcome == "failed"], report.to_dict()
        app_settings = product_settings(kb.settings, db_url, data_dir=root / "var")
        with app_client(kb, db, app_settings) as client:
            e = Env(client, kb, db, root)
            for role in ROLES:
                for member in (True, False):
                    user = f"{role}-{'in' if member else 'out'}"
                    groups = f"{GROUP},staff" if member else "sales,staff"
                    e.tokens[(role, member)] = make_user(db_url, root, user, role, groups)
            _seed(e, folder)
            yield e


def _seed(e: Env, folder: Path) -> None:
    c = e.client
    up = c.post(
        "/api/documents",
        files={"file": ("ledger.md", RESTRICTED_DOC.encode(), "text/markdown")},
        data={"groups": GROUP},
        headers=e.who("content_owner", True),
    )
    assert up.status_code == 201, up.text
    e.ids["document_id"] = up.json()["documents"][0]["id"]
    asked = c.post("/api/ask", json={"question": QUESTION}, headers=e.who("employee", True))
    assert asked.status_code == 200, asked.text
    body = asked.json()
    assert e.ids["document_id"] in {x["document_id"] for x in body["citations"]}, body
    e.ids["query_id"] = body["query_id"]
    e.ids["conversation_id"] = body["conversation_id"]
    # A follow-up in that conversation: its turns must not reach anyone else.
    again = c.post(
        "/api/ask",
        json={"question": "And who enters it?", "conversation_id": body["conversation_id"]},
        headers=e.who("employee", True),
    )
    assert again.status_code == 200, again.text
    down = c.post(
        "/api/feedback",
        json={"query_id": body["query_id"], "helpful": False},
        headers=e.who("employee", True),
    )
    assert down.status_code == 200 and down.json()["queued"], down.text
    group_id = down.json()["group_id"]
    e.ids["group_id"] = str(group_id)
    published = c.post(
        f"/api/queue/{group_id}/answer",
        json={"answer": ANSWER_MARKER},
        headers=e.who("support", True),
    )
    assert published.status_code == 201, published.text
    assert published.json()["groups"] == [GROUP]  # inherited from the cited document
    e.ids["answer_document_id"] = published.json()["document_id"]
    # Publishing made the group's question a confirmed pair (issue 22): its text is protected.
    with e.db.session() as s:
        e.ids["entry_id"] = str(s.execute(select(MemoryEntry.id)).scalars().first())
    with e.db.session() as s:
        run = s.execute(select(DocumentRecord.id).where(DocumentRecord.source == str(folder)))
        e.ids["folder_document_id"] = run.scalar_one()
    e.ids["folder"] = str(folder)
    vocab = c.post("/api/synonyms", json={"terms": ["QXL", "Quillfeather ledger"]},
                   headers=e.who("content_owner", True))  # fmt: skip
    assert vocab.status_code == 201, vocab.text
    e.ids["synonym_id"] = str(vocab.json()["id"])
    runs = c.get("/api/ingest/runs", headers=e.who("admin", True)).json()
    e.ids["run_id"] = runs[0]["id"] if runs else str(uuid.uuid4())


# -- cases from the schema ------------------------------------------------------------------


def _path_value(path: str, name: str, e: Env) -> str:
    if name == "document_id":
        return e.ids["document_id"]
    if name == "group_id":
        return e.ids["group_id"]
    if name == "synonym_id":
        return e.ids["synonym_id"]
    if name == "entry_id":
        return e.ids["entry_id"]
    if name == "run_id":
        return "20260101T000000Z" if path.startswith("/api/eval/") else e.ids["run_id"]
    raise AssertionError(f"{path}: give the path parameter {name!r} a value in this test")


def _field_value(name: str, schema: dict[str, Any], e: Env) -> Any:
    """A value for a body field: the restricted item where the field names one."""
    known: dict[str, Any] = {
        "question": PROBE,
        "query_id": e.ids["query_id"],
        "path": e.ids["folder"],
        "groups": [],
        "answer": "An answer written by someone outside the group.",
        "state": "dismissed",
        "representative": "Rewritten by someone outside the group",
        "helpful": True,
        # The member's conversation that began with the restricted question (issue 23).
        "conversation_id": e.ids["conversation_id"],
        "terms": ["Quillfeather", "QX ledger"],
        "model": "kb",
        "messages": [{"role": "user", "content": PROBE}],
    }
    if name in known:
        return known[name]
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    return "x"


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].split("/")[-1]]
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return _resolve(option, spec)
    return schema


def _body(op: dict[str, Any], spec: dict[str, Any], e: Env) -> dict[str, Any]:
    content = (op.get("requestBody") or {}).get("content") or {}
    if "application/json" in content:
        schema = _resolve(content["application/json"]["schema"], spec)
        props = schema.get("properties", {})
        body = {k: _field_value(k, _resolve(v, spec), e) for k, v in props.items()}
        return {"json": body}
    if "multipart/form-data" in content:
        return {
            "files": {"file": ("note.md", b"# Note\n\nA new note.\n", "text/markdown")},
            "data": {"groups": GROUP},
        }
    return {}


def _cases(e: Env) -> list[dict[str, Any]]:
    spec = e.client.app.openapi()  # type: ignore[attr-defined]
    cases = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            url = path
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    url = url.replace(
                        "{" + param["name"] + "}", _path_value(path, param["name"], e)
                    )
            params = {"state": "all", "limit": 500} if path == "/api/queue" else {}
            for param in op.get("parameters", []):
                if param["in"] == "query" and param.get("required"):
                    params[param["name"]] = _field_value(param["name"], param["schema"], e)
            cases.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "url": url,
                    "params": params,
                    **_body(op, spec, e),
                }  # fmt: skip
            )
    return cases


def _call(e: Env, case: dict[str, Any], headers: dict[str, str]) -> tuple[int, str]:
    kwargs = {k: case[k] for k in ("json", "files", "data") if k in case}
    resp = e.client.request(case["method"], case["url"], params=case["params"], headers=headers,
                            **kwargs)  # fmt: skip
    return resp.status_code, resp.text


def _found(text: str, e: Env, case: dict[str, Any] | None = None) -> set[str]:
    """The markers in ``text``, and the restricted documents' ids unless the request itself
    held them (an error may name the id the caller sent)."""
    flat = " ".join(text.split())
    found = {k for k, m in MARKERS.items() if m in flat}
    sent = json.dumps(case, default=str) if case else ""
    for key in ("document_id", "answer_document_id", "folder_document_id"):
        if e.ids[key] in text and e.ids[key] not in sent:
            found.add(key)
    return found


SAFE = {"GET", "HEAD", "OPTIONS"}
SAFE_POSTS = {"/api/ask", "/api/ask/stream", "/v1/chat/completions"}


def test_no_route_shows_a_non_member_what_a_group_protects(env: Env) -> None:
    e = env
    before = e.snapshot()
    cases = _cases(e)
    assert len(cases) >= 30, [c["path"] for c in cases]
    seen_by_members: dict[str, set[str]] = defaultdict(set)
    leaks: list[tuple[str, str, str, set[str]]] = []
    refused_writes = 0
    calls = 0
    # Members first, read-only (their writes would change what the others are tested on).
    for role in ROLES:
        for case in cases:
            if case["method"] not in SAFE and case["path"] not in SAFE_POSTS:
                continue
            _status, text = _call(e, case, e.who(role, True))
            calls += 1
            for marker in _found(text, e, case):
                seen_by_members[marker].add(f"{role} {case['method']} {case['path']}")
    # Non-members: every operation, writes included. Admins see everything by design.
    for role in ROLES[:-1]:
        for case in cases:
            status, text = _call(e, case, e.who(role, False))
            calls += 1
            found = _found(text, e, case)
            if found:
                leaks.append((role, case["method"], case["path"], found))
            if case["method"] not in SAFE and status in (403, 404):
                refused_writes += 1
    print(
        f"\nroute leak suite: {len(cases)} operations x {len(ROLES)} roles x member/non-member "
        f"= {calls} calls; {len(MARKERS)} markers + 3 ids checked in every body; "
        f"{refused_writes} writes by non-members refused"
    )
    assert not leaks, leaks
    # Members see every marker somewhere, through the routes meant to show it.
    for marker in (*SEEN_BY_MEMBERS, "document_id", "answer_document_id", "folder_document_id"):
        assert seen_by_members[marker], marker
    assert any("GET /api/documents/{document_id}/source" in w for w in seen_by_members["document"])
    assert any(w.startswith("support GET /api/queue") for w in seen_by_members["question"])
    assert any("GET /api/queue/{group_id}/answer" in w for w in seen_by_members["answer"])
    assert any("/api/analytics/export.csv" in w for w in seen_by_members["question"])
    # Nothing a non-member tried changed the restricted document, its file, its passages, the
    # queue group or its staff answer; a member still gets the document's answer.
    assert e.snapshot() == before
    asked = e.client.post("/api/ask", json={"question": QUESTION}, headers=e.who("employee", True))
    assert e.ids["document_id"] in {c["document_id"] for c in asked.json()["citations"]}


def test_a_mixed_queue_group_shows_a_non_member_its_own_rows_and_a_count(env: Env) -> None:
    e = env
    # The same need asked by someone outside the group, in their words: escalated and queued.
    asked = e.client.post("/api/ask", json={"question": PROBE}, headers=e.who("employee", False))
    body = asked.json()
    assert e.ids["document_id"] not in asked.text
    esc = e.client.post(
        "/api/escalate", json={"query_id": body["query_id"]}, headers=e.who("employee", False)
    )
    assert esc.status_code == 200, esc.text
    group_id = esc.json()["group_id"]
    # The answered group takes no new items: a new open group holds the outsider's question.
    # Move it into the restricted group, as later questions of one open need would land.
    with e.db.session() as s:
        item = s.execute(
            select(QueueItem).where(QueueItem.query_id == body["query_id"])
        ).scalar_one()
        item.group_id = int(e.ids["group_id"])
    try:
        outsider = e.client.get(f"/api/queue/{e.ids['group_id']}", headers=e.who("support", False))
        assert outsider.status_code == 200, outsider.text
        view = outsider.json()
        assert view["hidden"] == 1 and view["count"] == 1
        assert [v["query_id"] for v in view["variants"]] == [body["query_id"]]
        assert view["answer"] is None and view["answer_document_id"] is None
        assert not _found(outsider.text, e)
        assert e.ids["query_id"] not in outsider.text
        # Changing a group with hidden questions is refused, and changes nothing.
        patch = e.client.patch(
            f"/api/queue/{e.ids['group_id']}", json={"state": "dismissed"},
            headers=e.who("support", False),
        )  # fmt: skip
        assert patch.status_code == 403 and patch.json()["error_code"] == "FORBIDDEN"
        member = e.client.get(f"/api/queue/{e.ids['group_id']}", headers=e.who("support", True))
        assert member.json()["hidden"] == 0 and member.json()["count"] == 2
        assert member.json()["state"] == "answered"
    finally:
        with e.db.session() as s:
            item = s.execute(
                select(QueueItem).where(QueueItem.query_id == body["query_id"])
            ).scalar_one()
            item.group_id = group_id


def test_tokens_follow_the_users_current_state(env: Env, db_url: str) -> None:
    e = env
    c = e.client
    url = f"/api/documents/{e.ids['document_id']}"
    # A member signs in with an API token and gets a widget token for the intranet page.
    cli(db_url, e.root, "users", "add", "widget-user", "--roles", "employee", "--groups", GROUP)
    api_token = json.loads(
        cli(db_url, e.root, "tokens", "create", "widget-user", "--json").strip().splitlines()[-1]
    )["token"]
    widget = c.post("/api/widget/token", json={}, headers=bearer(api_token))
    assert widget.status_code == 200, widget.text
    wt = widget.json()["token"]
    assert c.get(url, headers=bearer(wt)).status_code == 200
    # A widget token does not renew itself: renewal needs a sign-in.
    renew = c.post("/api/widget/token", json={}, headers=bearer(wt))
    assert renew.status_code == 401 and renew.json()["error_code"] == "UNAUTHENTICATED"
    # Removed from the group: the next request no longer sees the group's documents, through
    # either token, in the catalog or in answers.
    cli(db_url, e.root, "users", "set-roles", "widget-user", "--roles", "employee", "--groups", "")
    for token in (wt, api_token):
        assert c.get(url, headers=bearer(token)).status_code == 404
        asked = c.post("/api/ask", json={"question": QUESTION}, headers=bearer(token))
        assert asked.status_code == 200 and e.ids["document_id"] not in asked.text
        assert DOC_MARKER not in asked.text
    # Disabled: both tokens are refused at once, and no new widget token can be had.
    cli(db_url, e.root, "users", "disable", "widget-user")
    for token in (wt, api_token):
        resp = c.get("/api/me", headers=bearer(token))
        assert resp.status_code == 401 and resp.json()["error_code"] == "UNAUTHENTICATED"
        again = c.post("/api/widget/token", json={}, headers=bearer(token))
        assert again.status_code == 401


def test_retrieval_filter_and_catalog_agree(env: Env) -> None:
    """The sanity of the fixture itself: the store restricts what the catalog restricts."""
    e = env
    for key in ("document_id", "answer_document_id", "folder_document_id"):
        points = e.kb.store.document_chunks(e.ids[key])
        assert points and all(p.chunk.groups == (GROUP,) for p in points), key
    outsider = e.kb.ask(QUESTION, acl=AccessFilter(("sales",)))
    assert e.ids["document_id"] not in {c.document_id for c in outsider.citations}


TWO_GROUPS_DOC = (
    "# Brindlewood travel\n\n## Approval\n\nThe Brindlewood expense approval limit is 4,200 euros "
    "per trip; above it the finance and legal leads both sign.\n"
)


def _upload(e: Env, name: str, text: str, groups: str) -> str:
    up = e.client.post(
        "/api/documents",
        files={"file": (name, text.encode(), "text/markdown")},
        data={"groups": groups},
        headers=e.who("admin", True),
    )
    assert up.status_code == 201, up.text
    doc_id: str = up.json()["documents"][0]["id"]
    return doc_id


def _state(e: Env, doc_id: str) -> tuple[Any, ...]:
    with e.db.session() as s:
        rec = s.get(DocumentRecord, doc_id)
        assert rec is not None
        row = (rec.groups, rec.version, rec.hash, rec.chunk_count)
    points = sorted((p.chunk.point_id, p.chunk.groups) for p in e.kb.store.document_chunks(doc_id))
    return row, points


def test_writes_need_membership_of_every_group_old_and_new(env: Env) -> None:
    e = env
    doc_id = _upload(e, "brindlewood.md", TWO_GROUPS_DOC, f"{GROUP},legal")
    url = f"/api/documents/{doc_id}"
    before = _state(e, doc_id)
    writes = [
        ("patch", {"json": {"groups": []}}),
        ("patch", {"json": {"groups": [GROUP]}}),
        ("put", {"files": {"file": ("b.md", b"# B\n\nReplaced.\n", "text/markdown")}}),
        ("delete", {}),
    ]
    # A member of one of its two groups reads it but may not change it; an outsider may not
    # even learn it exists.
    for method, kwargs in writes:
        inside = getattr(e.client, method)(url, headers=e.who("content_owner", True), **kwargs)
        assert inside.status_code == 403 and inside.json()["error_code"] == "FORBIDDEN"
        outside = getattr(e.client, method)(url, headers=e.who("content_owner", False), **kwargs)
        assert outside.status_code == 404 and outside.json()["error_code"] == "NOT_FOUND"
        # Members of both groups without the role content_owner are refused too.
        support = getattr(e.client, method)(url, headers=e.who("support", True), **kwargs)
        assert support.status_code == 403
    assert _state(e, doc_id) == before
    assert e.client.get(url, headers=e.who("employee", True)).status_code == 200
    denied = e.client.get(
        "/api/audit",
        params={"action": "access.denied", "actor": "content_owner-in", "limit": 1000},
        headers=e.who("admin", True),
    ).json()
    assert any(f"DELETE {url}" == d["target"] for d in denied), denied

    # One group: its member may make it public (a group change) but not give it to a group
    # they are not in.
    single = _upload(
        e, "single.md", "# Single\n\n## Note\n\nThe Oakmere locker code changes monthly.\n", GROUP
    )
    widen = e.client.patch(
        f"/api/documents/{single}", json={"groups": [GROUP, "sales"]},
        headers=e.who("content_owner", True),
    )  # fmt: skip
    assert widen.status_code == 403 and "sales" in widen.json()["detail"]
    public = e.client.patch(
        f"/api/documents/{single}", json={"groups": []}, headers=e.who("content_owner", True)
    )
    assert public.status_code == 200 and public.json()["groups"] == []
    # Uploading into a group needs its membership too.
    into = e.client.post(
        "/api/documents",
        files={"file": ("n.md", b"# N\n\nNew.\n", "text/markdown")},
        data={"groups": "legal"},
        headers=e.who("content_owner", True),
    )
    assert into.status_code == 403
    # Syncing a folder holding documents of a group needs its membership.
    sync = e.client.post(
        "/api/ingest", json={"path": e.ids["folder"]}, headers=e.who("content_owner", False)
    )
    assert sync.status_code == 403 and GROUP in sync.json()["detail"]


def test_a_staff_answer_inherits_its_sources_groups(env: Env) -> None:
    e = env
    doc_id = _upload(
        e, "brindlewood-2.md", TWO_GROUPS_DOC.replace("4,200", "4,300"), f"{GROUP},legal"
    )
    q = "What is the Brindlewood expense approval limit per trip?"
    asked = e.client.post("/api/ask", json={"question": q}, headers=e.who("employee", True))
    assert doc_id in {c["document_id"] for c in asked.json()["citations"]}, asked.text
    down = e.client.post(
        "/api/feedback",
        json={"query_id": asked.json()["query_id"], "helpful": False},
        headers=e.who("employee", True),
    )
    group_id = down.json()["group_id"]
    answer_url = f"/api/queue/{group_id}/answer"
    # Public (wider than finance + legal) needs membership of both; the support member has
    # finance only.
    wide = e.client.post(
        answer_url, json={"answer": "Ask the travel desk.", "groups": []},
        headers=e.who("support", True),
    )  # fmt: skip
    assert wide.status_code == 403 and "legal" in wide.json()["detail"]
    # Someone who may not read the question does not see the group at all.
    hidden = e.client.post(answer_url, json={"answer": "x"}, headers=e.who("support", False))
    assert hidden.status_code == 404
    inherited = e.client.post(
        answer_url, json={"answer": "Ask the travel desk."}, headers=e.who("support", True)
    )
    assert inherited.status_code == 201 and inherited.json()["groups"] == [GROUP, "legal"]
    assert e.client.get(answer_url, headers=e.who("support", False)).status_code == 404
    # An admin may publish it to everyone.
    edit = e.client.put(
        answer_url, json={"answer": "Ask the travel desk.", "groups": []},
        headers=e.who("admin", False),
    )  # fmt: skip
    assert edit.status_code == 200 and edit.json()["groups"] == []


def test_oidc_and_dev_identities_of_a_disabled_local_user_are_refused(
    env: Env, db_url: str
) -> None:
    from kb.api.deps import _current
    from kb.services.auth import AuthError
    from kb.services.identity import Identity

    cli(db_url, env.root, "users", "add", "oidc-user", "--roles", "employee", "--groups", GROUP)
    for via in ("oidc", "dev", "widget"):
        who = Identity("oidc-user", (GROUP, "sales"), ("employee",), None, via=via)
        current = _current(env.db, who)
        # A widget token's groups shrink to the record's; the others are as the provider says.
        assert current.groups == ((GROUP,) if via == "widget" else (GROUP, "sales"))
    cli(db_url, env.root, "users", "disable", "oidc-user")
    for via in ("oidc", "dev", "widget"):
        with pytest.raises(AuthError):
            _current(env.db, Identity("oidc-user", (GROUP,), ("employee",), None, via=via))
    # Someone the local records do not know is as their token says.
    stranger = Identity("stranger", (GROUP,), ("employee",), None, via="oidc")
    assert _current(env.db, stranger) == stranger
