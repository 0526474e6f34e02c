"""Walking a source folder: which files are documents, their ids and access metadata.

Metadata convention (docs/ingestion.md):
- ``NAME.EXT.meta.json`` beside a file sets that file's metadata;
- ``.kbmeta.json`` in a folder sets it for every file in that folder and below;
- keys: ``groups`` (list of access groups; absent or empty = public) and ``title``.
A file's sidecar overrides its folders' files; a deeper folder overrides a shallower one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.retrieval.errors import IngestError

FOLDER_META = ".kbmeta.json"
SIDECAR_SUFFIX = ".meta.json"


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One candidate document found in a source folder."""

    path: Path
    relpath: str
    document_id: str
    groups: tuple[str, ...]
    title: str | None


def document_id_for(source: str, relpath: str) -> str:
    """Stable id of the document at ``relpath`` in ``source`` (same file, same id, every run)."""
    return "d_" + hashlib.sha1(f"{source}\n{relpath}".encode()).hexdigest()[:20]


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IngestError(f"invalid metadata file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise IngestError(f"invalid metadata file {path}: expected a JSON object")
    groups = data.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise IngestError(f"invalid metadata file {path}: 'groups' must be a list of names")
    return data


def walk_source(root: Path) -> Iterator[SourceFile]:
    """Every document file under ``root`` (hidden files and metadata files skipped), sorted.

    :raises IngestError: if ``root`` does not exist or a metadata file is malformed.
    """
    if not root.exists():
        raise IngestError(f"no such file or folder: {root}")
    root = root.resolve()
    if root.is_file():
        files = [root]
        base = root.parent
    else:
        base = root
        files = sorted(p for p in root.rglob("*") if p.is_file())
    source = str(root)
    folder_meta: dict[Path, dict[str, Any]] = {}
    for path in files:
        rel = path.relative_to(base)
        if any(part.startswith(".") for part in rel.parts) or path.name.endswith(SIDECAR_SUFFIX):
            continue
        if not path.resolve().is_relative_to(base):
            # A link out of the folder (to /etc, another document's upload...) is never read
            # (issue 20): only what the folder itself holds is its content.
            continue
        meta: dict[str, Any] = {}
        for folder in [base, *[base / Path(*rel.parts[:i]) for i in range(1, len(rel.parts))]]:
            if folder not in folder_meta:
                f = folder / FOLDER_META
                folder_meta[folder] = _read_meta(f) if f.is_file() else {}
            meta.update(folder_meta[folder])
        sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
        if sidecar.is_file():
            meta.update(_read_meta(sidecar))
        relpath = rel.as_posix()
        yield SourceFile(
            path=path,
            relpath=relpath,
            document_id=document_id_for(source, relpath),
            groups=tuple(sorted(set(meta.get("groups") or []))),
            title=meta.get("title"),
        )
