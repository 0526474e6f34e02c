"""Which Qdrant server version each request feature of :mod:`retrieval.stores.server` needs.

The server adapter checks the server's version when it connects (:func:`check_server_version`)
and refuses a server older than :data:`REQUIRED` with a message naming the features it lacks;
``tests/contract/test_server_features.py`` records every request the adapter builds and fails
when one uses a feature missing from :data:`FEATURES` or newer than the server version that
``docker-compose.yml`` pins. Add a feature here, with the release that introduced it, when the
adapter starts using it (issue 24).

Sources: Qdrant's documentation ("Available as of ...") and release notes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from enum import Enum
from typing import Any

from pydantic import BaseModel

Version = tuple[int, int, int]

FEATURES: dict[str, tuple[Version, str]] = {
    # Client calls (REST endpoints).
    "call:collection_exists": ((1, 8, 0), "GET /collections/{name}/exists"),
    "call:create_collection": ((1, 0, 0), "create a collection"),
    "call:get_collection": ((1, 0, 0), "collection info"),
    "call:delete_collection": ((1, 0, 0), "delete a collection"),
    "call:create_payload_index": ((1, 0, 0), "keyword payload index"),
    "call:upsert": ((1, 0, 0), "upsert points"),
    "call:delete": ((1, 0, 0), "delete points by filter"),
    "call:set_payload": ((1, 0, 0), "set payload by filter"),
    "call:count": ((1, 0, 0), "exact count"),
    "call:scroll": ((1, 0, 0), "scroll with a filter"),
    "call:query_batch_points": ((1, 10, 0), "batch Query API (/points/query/batch)"),
    "call:facet": ((1, 12, 0), "facet counts (/facet)"),
    "call:info": ((1, 0, 0), "server version (GET /)"),
    # Collection layout.
    "VectorParams": ((1, 0, 0), "named dense vectors"),
    "Distance.Cosine": ((1, 0, 0), "cosine distance"),
    "SparseVectorParams": ((1, 7, 0), "sparse vectors"),
    "SparseVectorParams.modifier": ((1, 10, 0), "sparse vector modifier"),
    "Modifier.idf": ((1, 10, 0), "IDF modifier on sparse vectors (BM25 terms)"),
    "ScalarQuantization": ((1, 1, 0), "scalar (int8) quantization"),
    "ScalarQuantizationConfig": ((1, 1, 0), "scalar quantization settings"),
    "ScalarQuantizationConfig.quantile": ((1, 1, 0), "quantization quantile"),
    "ScalarQuantizationConfig.always_ram": ((1, 1, 0), "quantized vectors kept in RAM"),
    "ScalarType.int8": ((1, 1, 0), "int8 quantization"),
    "PayloadSchemaType.keyword": ((1, 0, 0), "keyword payload index"),
    # Points and filters.
    "PointStruct": ((1, 0, 0), "points with named vectors"),
    "SparseVector": ((1, 7, 0), "sparse vectors in points and queries"),
    "Filter": ((1, 0, 0), "filters"),
    "FilterSelector": ((1, 0, 0), "points selected by a filter"),
    "FieldCondition": ((1, 0, 0), "payload field conditions"),
    "FieldCondition.match": ((1, 0, 0), "match conditions"),
    "Filter.must": ((1, 0, 0), "must clauses"),
    "Filter.must_not": ((1, 0, 0), "must_not clauses"),
    "PointStruct.payload": ((1, 0, 0), "point payloads"),
    "MatchValue": ((1, 0, 0), "exact match"),
    "MatchAny": ((1, 0, 0), "match any of several values (access groups)"),
    # Query API.
    "QueryRequest": ((1, 10, 0), "batch query requests"),
    "QueryRequest.query": ((1, 10, 0), "query by vector"),
    "QueryRequest.using": ((1, 10, 0), "query on a named vector"),
    "QueryRequest.filter": ((1, 10, 0), "filtered query"),
    "QueryRequest.limit": ((1, 10, 0), "query limit"),
    "QueryRequest.with_payload": ((1, 10, 0), "query without payload"),
    "QueryRequest.with_vector": ((1, 10, 0), "query without vectors"),
}
"""Feature -> (first server version that has it, what it is)."""

REQUIRED: Version = max(version for version, _ in FEATURES.values())
"""The oldest Qdrant server the adapter works with."""


def parse_version(text: str) -> Version:
    """``"1.17.1"``, ``"v1.17"`` or ``"1.18.0-dev"`` -> ``(1, 17, 1)`` ...

    :raises ValueError: no version number in ``text``.
    """
    found = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not found:
        raise ValueError(f"not a version: {text!r}")
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


def show(version: Version) -> str:
    """``(1, 17, 0)`` -> ``"1.17.0"``."""
    return ".".join(str(n) for n in version)


def missing(server: Version, features: Iterable[str] | None = None) -> list[str]:
    """The features (all of :data:`FEATURES` by default) that ``server`` is too old for,
    each as ``"<what> (<version>)"``."""
    names = FEATURES if features is None else features
    return [
        f"{FEATURES[name][1]} ({show(FEATURES[name][0])})"
        for name in names
        if FEATURES[name][0] > server
    ]


def too_old_message(where: str, server: str) -> str | None:
    """``None`` when ``server`` (a version string) has every feature, else why not."""
    try:
        version = parse_version(server)
    except ValueError:
        return None  # a development build without a number: let the requests tell
    lacking = missing(version)
    if not lacking:
        return None
    return (
        f"the Qdrant server at {where} runs {server}, older than {show(REQUIRED)}, which this "
        f"version needs for: {'; '.join(lacking)}. Upgrade the server (docker-compose.yml pins "
        "the tested image)"
    )


def used_features(method: str, arguments: Iterable[Any]) -> set[str]:
    """The :data:`FEATURES` keys a client call uses: the call itself, each request model,
    each model field set explicitly and each enum value, however deeply nested."""
    found = {f"call:{method}"}
    for value in arguments:
        found.update(_walk(value))
    return found


def _walk(value: Any) -> Iterator[str]:
    if isinstance(value, BaseModel):
        name = type(value).__name__
        yield name
        fields = type(value).model_fields
        for field in value.model_fields_set:
            # An optional field is a feature of its own (it may be newer than its model).
            if getattr(value, field) is not None and not fields[field].is_required():
                yield f"{name}.{field}"
            yield from _walk(getattr(value, field))
    elif isinstance(value, Enum):
        yield f"{type(value).__name__}.{value.value}"
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _walk(item)
