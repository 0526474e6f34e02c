"""Every route's success response is described in the OpenAPI schema (issue 26): a JSON body
has a model, anything else names its media type."""

from __future__ import annotations

from pathlib import Path

from kb.api.app import create_app
from kb.retrieval.settings import Settings

UNTYPED = ({}, {"type": "object", "additionalProperties": True})


def test_every_json_response_has_a_model(tmp_path: Path) -> None:
    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    bare = []
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            ok = [v for code, v in op["responses"].items() if code.startswith("2")]
            for response in ok:
                body = response.get("content", {}).get("application/json")
                if body is None:
                    continue  # 204, a stream, a file, a page
                described = body.get("schema", {})
                items = described.get("items") if described.get("type") == "array" else None
                if described in UNTYPED or (items is not None and items in UNTYPED):
                    bare.append(f"{method.upper()} {path}")
    assert bare == []
