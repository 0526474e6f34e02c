"""Fuzzing (issue 8): schemathesis generates requests from the OpenAPI schema for every
operation, sent with an admin token to a private knowledge base; no response may be a 5xx or
break the documented response schema."""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from kb.api.app import create_app
from kb.ingest.pipeline import Ingestor
from tests.integration._auth import bearer, make_user, product_settings
from tests.integration._kb import FIXTURES, open_kb, settings_for
from tests.serving import serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # every operation, generated requests

_STATE: dict[str, object] = {}


def _app():
    """The app over a private knowledge base (the fuzzer deletes and re-groups documents)."""
    import atexit
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="kb-fuzz-"))
    atexit.register(shutil.rmtree, root, True)
    corpus = root / "corpus"
    corpus.mkdir()
    for name in ("printer_guide.md", "faq_ja.csv", "release_notes.txt"):
        shutil.copy(FIXTURES / name, corpus / name)
    base = settings_for(root / "var", ingest_roots=[root / "allowed"])
    context = open_kb(base)
    kb, db = context.__enter__()
    atexit.register(context.__exit__, None, None, None)
    Ingestor(kb, db).sync_folder(corpus)
    token = make_user(base.db_url(), root, "fuzzer", "admin")

    app = create_app(
        product_settings(base, base.db_url(), data_dir=root / "var"), lifespan=serving(kb, db)
    )
    app.state.kb, app.state.db = kb, db
    _STATE["token"] = token
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_no_schema_violations(case):
    case.call_and_validate(
        headers=bearer(str(_STATE["token"])),
        checks=[not_a_server_error, response_schema_conformance],
    )
