"""The sample knowledge base, ingested once per test session with the real models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kb.api.app import create_app
from kb.db.engine import Database
from kb.ingest.pipeline import Ingestor, IngestReport
from kb.retrieval.service import KnowledgeBase
from kb.retrieval.settings import AuthSettings, IngestSettings, LimitsSettings, Settings
from tests.serving import serving

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "docs_corpus"
CASES = ROOT / "eval" / "cases" / "sample.jsonl"
# Embeddings are cached by content across runs so a local re-run does not re-embed the corpus.
EMBED_CACHE = ROOT / ".pytest_cache" / "kb-embeddings.sqlite3"


# The suites written before real authentication (issue 8) speak X-User-* headers and send
# requests faster than a person: they switch dev headers on and rate limits off, explicitly.
# tests/integration/test_auth.py and the other issue-8 suites run with the product defaults.
DEV_AUTH = AuthSettings(dev_headers=True)
NO_RATE_LIMITS = LimitsSettings(user_per_minute=0, address_per_minute=0)
# Ingestion in the calling process: an app per test module would otherwise start a worker
# process (seconds of imports) for its first upload. The worker has its own tests
# (tests/integration/test_isolation.py), and `kb ingest` in the CLI tests uses it.
IN_PROCESS = IngestSettings(isolated=False)


def sample_settings(data_dir: Path) -> Settings:
    """Default product settings in a private data folder (dev headers on, no rate limits)."""
    return Settings(
        data_dir=data_dir,
        embedding_cache=EMBED_CACHE,
        auth=DEV_AUTH,
        limits=NO_RATE_LIMITS,
        ingest=IN_PROCESS,
    )


@contextmanager
def sample_kb_at(data_dir: Path) -> Iterator[tuple[KnowledgeBase, Database, IngestReport]]:
    """The sample knowledge base ingested into ``data_dir``, with its database and report."""
    settings = sample_settings(data_dir)
    db = Database(settings.db_url())
    db.migrate()
    kb = KnowledgeBase.open(settings)
    try:
        yield kb, db, Ingestor(kb, db).sync_folder(CORPUS)
    finally:
        kb.close()
        db.dispose()


@pytest.fixture(scope="session")
def sample_kb(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[KnowledgeBase, Database, IngestReport]]:
    """Shared by the suites that read it. A suite that writes documents into a knowledge base
    opens its own (:func:`sample_kb_at`): a document deleted again still moves BM25's
    statistics, and with them the confidence of answers near the threshold."""
    with sample_kb_at(tmp_path_factory.mktemp("sample-kb")) as opened:
        yield opened


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A fresh, migrated SQLite database of its own (the question-memory suites write entries
    beside the shared sample knowledge base)."""
    database = Database(f"sqlite:///{tmp_path / 'kb.sqlite3'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def client(sample_kb: tuple[KnowledgeBase, Database, IngestReport]) -> Iterator[TestClient]:
    kb, db, _ = sample_kb

    with TestClient(create_app(kb.settings, lifespan=serving(kb, db))) as c:
        yield c


def load_cases() -> list[dict[str, object]]:
    """The example questions shipped with the sample corpus."""
    return [
        json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


@pytest.fixture(scope="session")
def sample_paths(sample_kb: tuple[KnowledgeBase, Database, IngestReport]) -> dict[str, str]:
    """Document id -> path in docs_corpus (citations show titles and links, not paths)."""
    _, _, report = sample_kb
    return {f.document_id: f.path for f in report.files}
