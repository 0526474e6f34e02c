"""VectorStore on qdrant-client: a Qdrant server or cluster, or qdrant-client's local mode.

Local mode (``local_mode=True``, a folder) is a pure-Python brute-force emulation: it stands in
for the server in tests, takes a folder lock (one client per folder, across processes), ignores
payload indexes (so none are created there: it would warn) and is not thread-safe (calls are
serialised here). Against a server the client is thread-safe and no lock is taken.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from kb.retrieval.errors import StoreError, StoreLockedError
from kb.retrieval.models import (
    DEFAULT_FUSION,
    AccessFilter,
    DenseQuery,
    EmbeddedChunk,
    Fusion,
    ScoredChunk,
    SparseQuery,
    SparseVector,
)
from kb.retrieval.stores._common import (
    FACET_LIMIT,
    KEYWORD_INDEXES,
    SPARSE_NAME,
    UPSERT_BATCH,
    batched,
    check_dense,
    dims_mismatch,
    fused_search,
    fusion_weights,
    group_values,
    has_terms,
    in_chunk_order,
    mean_vector,
    restricted_groups,
    vector_names,
)
from kb.retrieval.stores.server_features import too_old_message

SCROLL_PAGE = 256


class QdrantServerStore:
    """:class:`~retrieval.protocols.VectorStore` on a Qdrant server, or local mode in a folder.

    The constructor only stores the location; the client connects on first use.
    """

    def __init__(
        self,
        collection: str = "kb_chunks",
        *,
        url: str | None = None,
        api_key: str | None = None,
        path: Path | None = None,
        local_mode: bool = False,
        timeout: int = 30,
        quantization: str = "none",
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
    ) -> None:
        if local_mode == (url is not None) or (local_mode and path is None):
            raise ValueError("give either url (a server) or local_mode=True with a path")
        self.collection = collection
        self._url, self._api_key, self._path, self._timeout = url, api_key, path, timeout
        self._local = local_mode
        self.quantization = quantization
        # Cluster layout, applied when the collection is created (README "Scaling out").
        self._shards, self._replicas = shard_number, replication_factor
        self._write_consistency = write_consistency_factor
        self._client: QdrantClient | None = None
        self._dense: dict[str, int] | None = None
        self._exists = False
        self._closed = False
        self._open_lock = threading.Lock()
        self._call_lock: AbstractContextManager[Any] = (
            threading.RLock() if local_mode else nullcontext()
        )

    @property
    def where(self) -> str:
        """The collection's location, for messages."""
        if self._local:
            return f"collection {self.collection} in the qdrant-client local store at {self._path}"
        return f"collection {self.collection} on the Qdrant server at {self._url}"

    # -- lifecycle ----------------------------------------------------------------------------

    def ensure_collection(self, dense: dict[str, int]) -> None:
        """See :meth:`VectorStore.ensure_collection`."""
        if not dense:
            raise StoreError("ensure_collection needs at least one dense vector")
        with self._call("ensure_collection") as client:
            if client.collection_exists(self.collection):
                self._check_config(client, dense)
            else:
                client.create_collection(
                    self.collection,
                    vectors_config={
                        name: models.VectorParams(size=dim, distance=models.Distance.COSINE)
                        for name, dim in dense.items()
                    },
                    sparse_vectors_config={
                        SPARSE_NAME: models.SparseVectorParams(modifier=models.Modifier.IDF)
                    },
                    quantization_config=self._quantization(),
                    shard_number=self._shards,
                    replication_factor=self._replicas,
                    write_consistency_factor=self._write_consistency,
                )
            if not self._local:  # local mode ignores payload indexes and warns about them
                schema = client.get_collection(self.collection).payload_schema
                for key in KEYWORD_INDEXES:
                    if key not in schema:
                        client.create_payload_index(
                            self.collection, key, models.PayloadSchemaType.KEYWORD, wait=True
                        )
            self._dense, self._exists = dict(dense), True

    def optimize(self) -> bool:
        """A Qdrant server runs its optimizers by itself."""
        return False

    def drop_collection(self) -> None:
        """Delete the collection and every point in it (for ``--recreate``)."""
        with self._call("drop_collection") as client:
            client.delete_collection(self.collection)
            self._dense, self._exists = None, False

    def close(self) -> None:
        """See :meth:`VectorStore.close`. Idempotent."""
        with self._call_lock, self._open_lock:  # same order as _call, or local mode deadlocks
            self._closed = True
            client, self._client = self._client, None
            if client is not None:
                client.close()

    # -- writes -------------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[EmbeddedChunk]) -> int:
        """See :meth:`VectorStore.upsert`."""
        if not chunks:
            return 0
        for item in chunks:
            check_dense(self._dense, item.dense)
        with self._call("upsert") as client:
            for batch in batched(chunks, UPSERT_BATCH):
                points = [
                    models.PointStruct(
                        id=item.chunk.point_id, vector=_vectors(item), payload=item.chunk.payload()
                    )
                    for item in batch
                ]
                client.upsert(self.collection, points=points, wait=True)
        return len(chunks)

    def delete_document(
        self, document_id: str, *, keep_hash: str | None = None, keep_chunks: int | None = None
    ) -> None:
        """See :meth:`VectorStore.delete_document`."""
        doc = _document(document_id)
        kept = models.FieldCondition(key="doc_hash", match=models.MatchValue(value=keep_hash or ""))
        must_not: list[models.Condition] | None = [kept] if keep_hash is not None else None
        filters = [models.Filter(must=[doc], must_not=must_not)]
        if keep_hash is not None and keep_chunks is not None:
            beyond = models.FieldCondition(key="chunk_index", range=models.Range(gte=keep_chunks))
            filters.append(models.Filter(must=[doc, kept, beyond]))
        with self._call("delete") as client:
            if self._has_collection(client):
                for flt in filters:
                    selector = models.FilterSelector(filter=flt)
                    client.delete(self.collection, points_selector=selector, wait=True)

    def set_groups(self, document_id: str, groups: Sequence[str]) -> None:
        """See :meth:`VectorStore.set_groups`."""
        selector = models.FilterSelector(filter=models.Filter(must=[_document(document_id)]))
        with self._call("set_groups") as client:
            if self._has_collection(client):
                client.set_payload(
                    self.collection,
                    payload={"groups": group_values(groups)},
                    points=selector,
                    wait=True,
                )

    # -- reads --------------------------------------------------------------------------------

    def search(
        self,
        *,
        dense: Sequence[DenseQuery],
        sparse: SparseVector | None,
        top_k: int,
        acl: AccessFilter,
        prefetch_k: int = 50,
        document_ids: Sequence[str] | None = None,
        fusion: Fusion = DEFAULT_FUSION,
        translated: SparseQuery | None = None,
    ) -> list[ScoredChunk]:
        """See :meth:`VectorStore.search`."""
        if top_k <= 0 or (document_ids is not None and not document_ids):
            return []
        must: list[models.Condition] = [_access(acl)]
        if document_ids is not None:
            match = models.MatchAny(any=list(document_ids))
            must.append(models.FieldCondition(key="document_id", match=match))
        flt = models.Filter(must=must)
        limit = max(prefetch_k, top_k)
        names = vector_names(dense) if dense else False
        read: dict[str, Any] = {"limit": limit, "with_payload": True, "with_vector": names}
        # Each retriever (a prefetch) on its own, in one batch; the fusion runs here (``fuse``),
        # so that every passage carries both fusions' scores for the confidence.
        requests = [
            models.QueryRequest(
                query=q.vector,
                using=q.name,
                filter=flt if q.lang is None else models.Filter(must=[*must, _lang(q.lang)]),
                **read,
            )
            for q in dense
        ]
        with_sparse = sparse is not None and has_terms(sparse)
        if sparse is not None and with_sparse:
            vector = models.SparseVector(indices=list(sparse.indices), values=list(sparse.values))
            query = models.QueryRequest(query=vector, using=SPARSE_NAME, filter=flt, **read)
            requests.append(query)
        other = translated if translated is not None and has_terms(translated.vector) else None
        if other is not None:
            vector = models.SparseVector(
                indices=list(other.vector.indices), values=list(other.vector.values)
            )
            in_lang = models.Filter(must=[*must, _lang(other.lang)])
            requests.append(
                models.QueryRequest(query=vector, using=SPARSE_NAME, filter=in_lang, **read)
            )
        if not requests:
            return []
        weights = fusion_weights(fusion, dense, with_sparse, other)
        with self._call("search") as client:
            if not self._has_collection(client):
                return []
            batches = client.query_batch_points(self.collection, requests=requests)
        found = [batch.points for batch in batches]
        return fused_search(fusion, weights, found, dense, top_k)

    def access_groups(self) -> set[str]:
        """See :meth:`VectorStore.access_groups`."""
        with self._call("facet") as client:
            if not self._has_collection(client):
                return set()
            response = client.facet(self.collection, key="groups", limit=FACET_LIMIT, exact=True)
        return restricted_groups(h.value for h in response.hits if h.count > 0)

    def present_terms(self, indices: Sequence[int], *, acl: AccessFilter) -> set[int]:
        """See :meth:`VectorStore.present_terms`."""
        ids = list(dict.fromkeys(indices))
        if not ids:
            return set()
        flt = models.Filter(must=[_access(acl)])
        requests = [
            models.QueryRequest(
                query=models.SparseVector(indices=[i], values=[1.0]),
                using=SPARSE_NAME,
                filter=flt,
                limit=1,
                with_payload=False,
                with_vector=False,
            )
            for i in ids
        ]
        with self._call("present_terms") as client:
            if not self._has_collection(client):
                return set()
            responses = client.query_batch_points(self.collection, requests=requests)
        return {i for i, r in zip(ids, responses, strict=True) if r.points}

    def count(self, document_id: str | None = None) -> int:
        """See :meth:`VectorStore.count`."""
        flt = models.Filter(must=[_document(document_id)]) if document_id is not None else None
        with self._call("count") as client:
            if not self._has_collection(client):
                return 0
            return client.count(self.collection, count_filter=flt, exact=True).count

    def language_centroid(self, vector: str, lang: str, *, limit: int) -> tuple[list[float], int]:
        """See :meth:`VectorStore.language_centroid`."""
        records = self._scroll(models.Filter(must=[_lang(lang)]), vector=vector, limit=limit)
        vectors = [r.vector[vector] for r in records if isinstance(r.vector, dict)]
        return mean_vector(vectors), len(vectors)

    def document_chunks(self, document_id: str) -> list[ScoredChunk]:
        """See :meth:`VectorStore.document_chunks`."""
        records = self._scroll(models.Filter(must=[_document(document_id)]))
        return in_chunk_order([r.payload for r in records])

    # -- internals ----------------------------------------------------------------------------

    def _scroll(
        self, flt: models.Filter, *, vector: str | None = None, limit: int | None = None
    ) -> list[models.Record]:
        """The points matching ``flt``, page by page: with their payload, or with only the
        named ``vector``; at most ``limit`` of them."""
        records: list[models.Record] = []
        if limit is not None and limit <= 0:
            return records
        with self._call("scroll") as client:
            if not self._has_collection(client):
                return records
            offset: models.ExtendedPointId | None = None
            while limit is None or len(records) < limit:
                page = SCROLL_PAGE if limit is None else min(SCROLL_PAGE, limit - len(records))
                found, offset = client.scroll(
                    self.collection,
                    scroll_filter=flt,
                    limit=page,
                    offset=offset,
                    with_payload=vector is None,
                    with_vectors=[vector] if vector is not None else False,
                )
                records.extend(found)
                if offset is None:
                    break
        return records

    @contextmanager
    def _call(self, action: str) -> Iterator[QdrantClient]:
        """The client, with the local-mode lock held and client errors turned into StoreError."""
        with self._call_lock:
            client = self._connect()
            try:
                yield client
            except StoreError:
                raise
            except Exception as exc:  # qdrant-client raises HTTP, gRPC, httpx and ValueErrors
                raise StoreError(f"Qdrant {action} failed for {self.where}: {exc}") from exc

    def _connect(self) -> QdrantClient:
        client = self._client
        if client is not None:
            return client
        with self._open_lock:
            if self._closed:
                raise StoreError(f"the store for {self.where} is closed")
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _new_client(self) -> QdrantClient:
        if not self._local:
            # The client's own check only warns when the minor versions differ by more than
            # one; the features this adapter uses decide instead (issue 24).
            client = QdrantClient(
                url=self._url,
                api_key=self._api_key,
                timeout=self._timeout,
                check_compatibility=False,
            )
            try:
                version = client.info().version
            except Exception as exc:  # connection refused, TLS, auth: say where
                client.close()
                raise StoreError(f"cannot reach the Qdrant server at {self._url}: {exc}") from exc
            message = too_old_message(str(self._url), version)
            if message is not None:
                client.close()
                raise StoreError(message)
            return client
        try:
            # Our own lock serialises calls, so the SQLite connection may cross threads.
            return QdrantClient(path=str(self._path), force_disable_check_same_thread=True)
        except RuntimeError as exc:
            if "already accessed" not in str(exc):
                msg = f"cannot open the qdrant-client local store at {self._path}: {exc}"
                raise StoreError(msg) from exc
            raise StoreLockedError(
                f"the qdrant-client local store at {self._path} is in use by another client "
                "(another process, or an unclosed store in this one): local mode allows one"
            ) from exc

    def _quantization(self) -> models.ScalarQuantization | None:
        """int8 copies in RAM for search, rescored with the originals (issue 9)."""
        if self.quantization != "int8":
            return None
        return models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=0.99, always_ram=True
            )
        )

    def _has_collection(self, client: QdrantClient) -> bool:
        if not self._exists:
            self._exists = client.collection_exists(self.collection)
        return self._exists

    def _check_config(self, client: QdrantClient, dense: dict[str, int]) -> None:
        params = client.get_collection(self.collection).config.params
        vectors = params.vectors if isinstance(params.vectors, dict) else {}
        found = {name: p.size for name, p in vectors.items()}
        distances = {p.distance for p in vectors.values()}
        sparse = (params.sparse_vectors or {}).get(SPARSE_NAME)
        ok_sparse = sparse is not None and sparse.modifier == models.Modifier.IDF
        if found != dense or distances - {models.Distance.COSINE} or not ok_sparse:
            detail = f"dense {found}, distance {sorted(str(d) for d in distances)}, sparse {sparse}"
            raise dims_mismatch(self.where, dense, detail)


def _access(acl: AccessFilter) -> models.FieldCondition:
    return models.FieldCondition(key="groups", match=models.MatchAny(any=acl.allowed()))


def _document(document_id: str) -> models.FieldCondition:
    return models.FieldCondition(key="document_id", match=models.MatchValue(value=document_id))


def _lang(lang: str) -> models.FieldCondition:
    return models.FieldCondition(key="lang", match=models.MatchValue(value=lang))


def _vectors(item: EmbeddedChunk) -> dict[str, Any]:
    vectors: dict[str, Any] = dict(item.dense)
    if has_terms(item.sparse):
        vectors[SPARSE_NAME] = models.SparseVector(
            indices=list(item.sparse.indices), values=list(item.sparse.values)
        )
    return vectors
