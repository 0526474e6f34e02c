"""Helpers for the content-owner tests (issue 5): a private knowledge base and its API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from kb.api.app import create_app
from kb.db.engine import Database
from kb.db.models import DocumentRecord
from kb.retrieval.service import KnowledgeBase
from kb.retrieval.settings import Settings
from tests.integration.conftest import DEV_AUTH, EMBED_CACHE, IN_PROCESS, NO_RATE_LIMITS
from tests.serving import serving

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "corpus"


# A content owner may change only documents of groups they belong to (issue 19): this one
# belongs to every group the content-owner suites give their documents.
OWNER = {"X-User-Id": "owner1", "X-User-Roles": "content_owner", "X-User-Groups": "it,sales,x"}


def settings_for(data_dir: Path, **extra: object) -> Settings:
    """Product defaults in a private folder, with the shared embedding cache (dev headers on,
    no rate limits, unless ``extra`` says otherwise)."""
    extra = {"auth": DEV_AUTH, "limits": NO_RATE_LIMITS, "ingest": IN_PROCESS, **extra}
    return Settings(data_dir=data_dir, embedding_cache=EMBED_CACHE, **extra)  # type: ignore[arg-type]


@contextmanager
def open_kb(settings: Settings) -> Iterator[tuple[KnowledgeBase, Database]]:
    db = Database(settings.db_url())
    db.migrate()
    kb = KnowledgeBase.open(settings)
    try:
        yield kb, db
    finally:
        kb.close()
        db.dispose()


@contextmanager
def api_client(kb: KnowledgeBase, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(kb.settings, lifespan=serving(kb, db))) as client:
        yield client


def point_hashes(kb: KnowledgeBase, document_id: str) -> dict[str, int]:
    """doc_hash -> number of points of one document."""
    out: dict[str, int] = {}
    for p in kb.store.document_chunks(document_id):
        out[p.chunk.doc_hash] = out.get(p.chunk.doc_hash, 0) + 1
    return out


def catalog(db: Database) -> dict[str, DocumentRecord]:
    with db.session() as s:
        return {r.id: r for r in s.execute(select(DocumentRecord)).scalars().all()}
