"""Vector store adapters: Qdrant Edge (embedded, the default) and qdrant-client (server or
local mode). Each adapter module imports its own Qdrant package, so only the one in use loads."""

from __future__ import annotations

from typing import Any

from kb.retrieval.protocols import VectorStore
from kb.retrieval.settings import Settings


def open_store(settings: Settings) -> VectorStore:
    """The store the settings name: a server (``qdrant.url``), qdrant-client's local mode
    (``qdrant.local_mode``, tests only) or Qdrant Edge at :meth:`Settings.shard_path`.

    Nothing is opened yet: the store connects, or locks its folder, on first use.
    """
    q = settings.qdrant
    if q.url or q.local_mode:
        try:
            from kb.retrieval.stores.server import QdrantServerStore
        except ImportError as exc:  # the `server` extra is not installed
            from kb.retrieval.errors import StoreError

            raise StoreError(
                f"a Qdrant server needs qdrant-client ({exc}): pip install 'kb-assistant[server]'"
            ) from exc

        where: dict[str, Any] = (
            {"url": q.url, "api_key": q.api_key}
            if q.url
            else {"path": settings.shard_path(), "local_mode": True}
        )
        return QdrantServerStore(
            q.collection,
            **where,
            quantization=q.quantization,
            shard_number=q.shard_number,
            replication_factor=q.replication_factor,
            write_consistency_factor=q.write_consistency_factor,
        )
    from kb.retrieval.stores.edge import EdgeStore

    return EdgeStore(settings.shard_path(), q.collection, quantization=q.quantization)


__all__ = ["open_store"]
