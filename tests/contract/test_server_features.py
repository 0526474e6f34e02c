"""The server adapter's requests use only features of the Qdrant server that compose pins.

Every call the adapter makes is recorded (over qdrant-client's local mode), with the request
models it passes; each call, model, explicitly set field and enum value must be listed in
``retrieval.stores.server_features.FEATURES`` with the release that introduced it, and none may
be newer than the image tag in ``docker-compose.yml`` (issue 24).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from qdrant_client import QdrantClient

from kb.retrieval.errors import StoreError
from kb.retrieval.models import AccessFilter, DenseQuery, Fusion
from kb.retrieval.stores import server_features
from kb.retrieval.stores.server import QdrantServerStore
from kb.retrieval.stores.server_features import (
    FEATURES,
    REQUIRED,
    parse_version,
    too_old_message,
    used_features,
)
from tests.contract.helpers import DIMS, embed, make_chunk, sparse, vectors

ROOT = Path(__file__).resolve().parents[2]


def pinned_server() -> tuple[int, int, int]:
    """The Qdrant version of the image ``docker-compose.yml`` runs."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    image = compose["services"]["qdrant"]["image"]
    name, _, tag = image.partition(":")
    assert name == "qdrant/qdrant" and tag, f"pin a tagged Qdrant image, not {image!r}"
    return parse_version(tag)


class Recorder:
    """A qdrant-client stand-in that records each call and forwards it to local mode."""

    SKIPPED = {"create_payload_index"}  # local mode ignores payload indexes (and warns)

    def __init__(self, client: QdrantClient) -> None:
        self._client = client
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if not callable(target) or name == "close":
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return None if name in self.SKIPPED else target(*args, **kwargs)

        return call

    def features(self) -> set[str]:
        used: set[str] = set()
        for name, args, kwargs in self.calls:
            used |= used_features(name, [*args, *kwargs.values()])
        return used


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[Recorder]:
    """Every store operation, as the adapter sends them to a server (payload indexes too)."""
    recorder = Recorder(QdrantClient(path=str(tmp_path / "local")))
    store = QdrantServerStore(path=tmp_path / "unused", local_mode=True, quantization="int8")
    store._new_client = lambda: recorder  # type: ignore[method-assign,assignment,return-value]
    store._local = False  # the server branch: payload indexes are created
    chunks = [embed(make_chunk("manual", i), sparse(wifi=1.0, router=0.5)) for i in range(3)]
    chunks.append(embed(make_chunk("policy", 0, groups=("hr",)), sparse(salary=1.0)))
    dense = [DenseQuery(name, v) for name, v in vectors("q").items()]
    dense.append(DenseQuery(next(iter(DIMS)), vectors("q2")[next(iter(DIMS))], lang="en"))
    try:
        store.ensure_collection(dict(DIMS))
        store.upsert(chunks)
        acl = AccessFilter(groups=("hr",))
        store.search(
            dense=dense,
            sparse=sparse(wifi=1.0),
            top_k=3,
            acl=acl,
            document_ids=["manual"],
            fusion=Fusion(k=2, dense_weight=0.4, sparse_weight=1.0, method="rrf"),
        )
        store.search(
            dense=dense, sparse=sparse(wifi=1.0), top_k=3, acl=acl, fusion=Fusion(method="minmax")
        )
        store.search(dense=dense, sparse=None, top_k=3, acl=acl)
        store.present_terms([1, 2], acl=acl)
        store.access_groups()
        store.count()
        store.count("manual")
        store.document_chunks("manual")
        store.language_centroid(next(iter(DIMS)), "en", limit=10)
        store.set_groups("manual", ["hr"])
        store.delete_document("manual", keep_hash="x")
        store.drop_collection()
        yield recorder
    finally:
        store.close()


def test_every_request_feature_is_known_and_in_the_pinned_server(recorded: Recorder) -> None:
    used = recorded.features()
    assert {"call:query_batch_points", "call:facet"} <= used
    assert "call:query_points" not in used  # fusion runs in the service, from one batch
    assert "Modifier.idf" in used
    unknown = sorted(used - FEATURES.keys())
    assert not unknown, (
        f"the server adapter now uses {unknown}: add each to server_features.FEATURES with the "
        "Qdrant release that introduced it"
    )
    pinned = pinned_server()
    newer = {f: FEATURES[f][0] for f in used if FEATURES[f][0] > pinned}
    assert not newer, f"docker-compose.yml pins Qdrant {pinned}, older than {newer}"


def test_the_required_version_is_the_newest_feature_and_compose_has_it() -> None:
    assert REQUIRED == (1, 12, 0)  # facet counts (the access groups)
    assert pinned_server() >= REQUIRED


def test_too_old_server_message_names_the_missing_features() -> None:
    message = too_old_message("http://qdrant:6333", "1.11.3")
    assert message is not None
    assert "1.11.3" in message and "1.12.0" in message and "facet counts" in message
    assert too_old_message("http://qdrant:6333", "1.12.0") is None
    assert too_old_message("http://qdrant:6333", "v1.20.1") is None
    assert too_old_message("http://qdrant:6333", "dev") is None  # unknown build: let it try
    assert server_features.missing((1, 11, 9)) == ["facet counts (/facet) (1.12.0)"]


class _FakeQdrant(BaseHTTPRequestHandler):
    version = "1.11.3"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"title": "qdrant", "version": self.version, "commit": "x"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


def test_store_refuses_a_server_too_old_at_first_use() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FakeQdrant)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    store = QdrantServerStore(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        with pytest.raises(StoreError, match=r"runs 1\.11\.3, older than 1\.12\.0.*facet counts"):
            store.count()
    finally:
        store.close()
        httpd.shutdown()
        httpd.server_close()


def test_store_names_an_unreachable_server() -> None:
    store = QdrantServerStore(url="http://127.0.0.1:9", timeout=2)
    try:
        with pytest.raises(
            StoreError, match="cannot reach the Qdrant server at http://127.0.0.1:9"
        ):
            store.count()
    finally:
        store.close()
