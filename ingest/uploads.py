"""Documents managed through the API: uploaded files, their versions, groups and deletion.

Uploaded bytes are kept at ``<files_dir>/<document_id>/<version>/<safe name>`` and indexed
like any other file (same parsing, chunking, versioning and per-file errors), as documents of
the source ``upload``. An upload's name is reduced to a safe base name (directories, drive
letters, control characters and leading dots dropped); a name with a NUL byte, or one with
nothing left, is refused. Every path is checked to lie inside ``files_dir`` before anything is
written, so no name can place a file elsewhere.

Documents that come from a synced folder are managed there: replacing, deleting or regrouping
them through the API would be undone by the next sync, so it is refused with ``CONFLICT``.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from kb.db.models import DocumentRecord, IngestRun, utcnow
from kb.ingest.pipeline import Ingestor
from kb.ingest.runs import IngestReport
from kb.ingest.sources import SourceFile
from kb.retrieval.errors import IngestError, KBError, NotFoundError

log = logging.getLogger(__name__)

UPLOAD_SOURCE = "upload"
"""The ``source`` of every document added through the API."""

MAX_NAME_CHARS = 120
_COPY_BLOCK = 1024 * 1024
_DOCUMENT_ID = re.compile(r"^d_[0-9a-f]{20}$")
_UNSAFE = re.compile(r"[^\w.\- ()\[\]+&,]", re.UNICODE)


def safe_name(name: str) -> str:
    """The base name an upload is stored under.

    ``"../../etc/passwd"`` becomes ``"passwd"``, ``"C:\\\\docs\\\\a.pdf"`` ``"a.pdf"``,
    ``".bashrc"`` ``"bashrc"``; characters other than letters, digits and ``.-_ ()[]+&,``
    become ``_``.

    :raises IngestError: (``INVALID_FILENAME``) for a name with a NUL byte or nothing usable.
    """
    if "\x00" in name:
        raise IngestError("invalid file name: it contains a NUL byte", code="INVALID_FILENAME")
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name))[-1]
    base = re.sub(r"^[A-Za-z]:", "", base)  # a bare drive prefix ("C:name")
    base = "".join("_" if unicodedata.category(ch).startswith("C") else ch for ch in base)
    base = _UNSAFE.sub("_", base).strip(" .")
    if not base or not base.replace("_", ""):
        raise IngestError(
            f"invalid file name {name!r}: no usable name is left", code="INVALID_FILENAME"
        )
    if len(base) > MAX_NAME_CHARS:
        stem, dot, suffix = base.rpartition(".")
        keep = suffix if dot and len(suffix) <= 10 else ""
        base = base[: MAX_NAME_CHARS - len(keep) - 1].rstrip(" .") + ("." + keep if keep else "")
    return base


class FileStore:
    """The managed copies of uploaded files under :meth:`Settings.files_dir`."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def path_for(self, document_id: str, version: int, name: str) -> Path:
        """Where one version of an upload lives; refuses anything that would leave the root."""
        if not _DOCUMENT_ID.match(document_id):
            raise IngestError(f"invalid document id {document_id!r}")
        root = self.root.resolve()
        target = (root / document_id / str(int(version)) / safe_name(name)).resolve()
        if not target.is_relative_to(root) or target.parent.parent.parent != root:
            raise IngestError(f"invalid file name {name!r}", code="INVALID_FILENAME")
        return target

    def save(self, document_id: str, version: int, name: str, stream: BinaryIO) -> Path:
        """Copy ``stream`` into place, at most ``max_bytes``.

        :raises IngestError: ``FILE_TOO_LARGE`` past the limit (nothing is left behind),
            ``INVALID_FILENAME`` for an unusable name.
        """
        target = self.path_for(document_id, version, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with open(target, "wb") as out:
                while block := stream.read(_COPY_BLOCK):
                    written += len(block)
                    if written > self.max_bytes:
                        raise IngestError(
                            f"file too large: more than {self.max_bytes} bytes",
                            code="FILE_TOO_LARGE",
                        )
                    out.write(block)
        except BaseException:
            self.discard(target)
            raise
        return target

    def remove_document(self, document_id: str) -> None:
        """Delete every stored version of a document."""
        if _DOCUMENT_ID.match(document_id):
            shutil.rmtree(self.root / document_id, ignore_errors=True)

    def discard(self, target: Path) -> None:
        """Delete one stored file and its version folder when that is left empty."""
        target.unlink(missing_ok=True)
        for folder in (target.parent, target.parent.parent):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break


def remove_orphans(ingestor: Ingestor, files: FileStore) -> list[str]:
    """Delete the upload files a crash left behind (issue 20); call at start-up, before
    serving. :returns: the paths removed, relative to the files folder.

    An upload is saved before it is indexed, so a process killed in between leaves a file
    that no document serves: a folder of a document the catalog does not know, a version
    folder above the catalog's version (a replacement that never finished), or the files of
    an upload whose first version never completed (``pending``: its half-written points are
    removed too). Each removal is recorded in the run log (``GET /api/ingest/runs``).
    """
    root = files.root
    if not root.is_dir():
        return []
    with ingestor.db.session() as s:
        known = {
            r.id: (r.version, r.status, r.source)
            for r in s.execute(select(DocumentRecord)).scalars().all()
        }
    removed: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        doc_id = folder.name
        if not _DOCUMENT_ID.match(doc_id):
            continue
        entry = known.get(doc_id)
        if entry is None or (entry[1] == "pending" and entry[2] == UPLOAD_SOURCE):
            if entry is not None:
                ingestor.delete_document(doc_id)
            removed += [str(p.relative_to(root)) for p in sorted(folder.rglob("*")) if p.is_file()]
            shutil.rmtree(folder, ignore_errors=True)
            continue
        for version in sorted(p for p in folder.iterdir() if p.is_dir()):
            if version.name.isdigit() and int(version.name) > entry[0]:
                removed += [
                    str(p.relative_to(root)) for p in sorted(version.rglob("*")) if p.is_file()
                ]
                shutil.rmtree(version, ignore_errors=True)
    if removed:
        log.warning("removed %d upload file(s) a crash left behind: %s", len(removed), removed)
        with ingestor.db.session() as s:
            s.add(
                IngestRun(
                    id=str(uuid.uuid4()),
                    source=UPLOAD_SOURCE,
                    status="finished",
                    started_at=utcnow(),
                    finished_at=utcnow(),
                    report={
                        "created_by": "recovery",
                        "error": None,
                        "orphans_removed": removed,
                        "files": [
                            {
                                "path": p,
                                "document_id": p.split("/", 1)[0],
                                "outcome": "deleted",
                                "error": "left by a crash before it was indexed: removed",
                            }
                            for p in removed
                        ],
                    },
                )
            )
    return removed


@dataclass(frozen=True, slots=True)
class Upload:
    """One file of an upload request: its name as sent and its bytes."""

    name: str
    stream: BinaryIO


@dataclass(frozen=True, slots=True)
class Refusal:
    """A file refused before indexing (bad name, too large), with its error code."""

    name: str
    code: str
    detail: str


@dataclass(slots=True)
class UploadOutcome:
    """What became of the files of one request: the run's report (``None`` when no file got
    that far) and each file refused before it."""

    report: IngestReport | None
    refused: list[Refusal]


class DocumentManager:
    """Adds, replaces, deletes and regroups uploaded documents; each request holds ``lock``
    (the background runner's) so that it never runs beside an ingestion run; its writes go
    through :mod:`ingest.indexing` like every other."""

    def __init__(self, ingestor: Ingestor, files: FileStore, lock: threading.Lock) -> None:
        self.ingestor = ingestor
        self.files = files
        self.lock = lock

    def add(
        self,
        uploads: Sequence[Upload],
        *,
        groups: Sequence[str],
        title: str | None,
        created_by: str,
    ) -> UploadOutcome:
        """Each upload becomes a new document (version 1) readable by ``groups``."""
        staged: list[SourceFile] = []
        refused: list[Refusal] = []
        for up in uploads:
            document_id = "d_" + uuid.uuid4().hex[:20]
            try:
                path = self.files.save(document_id, 1, up.name, up.stream)
            except IngestError as exc:
                refused.append(Refusal(up.name, exc.code, exc.detail))
                continue
            staged.append(_source_file(path, document_id, groups, title))
        if not staged:
            return UploadOutcome(None, refused)
        with self.lock:
            report = self.ingestor.ingest_files(staged, source=UPLOAD_SOURCE, created_by=created_by)
            for result in report.files:
                if result.outcome == "failed":
                    # A new document that could not be indexed is not kept; the run's report
                    # and the response say why.
                    self.ingestor.delete_document(result.document_id)
                    self.files.remove_document(result.document_id)
        return UploadOutcome(report, refused)

    def replace(self, document_id: str, upload: Upload, *, created_by: str) -> UploadOutcome:
        """Index ``upload`` as the next version of an uploaded document."""
        rec = self._managed(document_id)
        version = rec.version + 1
        try:
            path = self.files.save(document_id, version, upload.name, upload.stream)
        except IngestError as exc:
            return UploadOutcome(None, [Refusal(upload.name, exc.code, exc.detail)])
        sf = _source_file(path, document_id, tuple(rec.groups), None)
        with self.lock:
            report = self.ingestor.ingest_files([sf], source=UPLOAD_SOURCE, created_by=created_by)
        if report.files and report.files[0].outcome in ("unchanged", "failed"):
            # Same bytes as the current version, or not indexable (the current version keeps
            # serving): the new copy serves nothing.
            self.files.discard(path)
        return UploadOutcome(report, [])

    def delete(self, document_id: str) -> None:
        """Remove an uploaded document: its points, catalog entry, history and files."""
        self._managed(document_id)
        with self.lock:
            self.ingestor.delete_document(document_id)
        self.files.remove_document(document_id)

    def set_groups(self, document_id: str, groups: Sequence[str]) -> None:
        """Change who may read an uploaded document; nothing is re-embedded."""
        self._managed(document_id)
        with self.lock:
            self.ingestor.set_groups(document_id, groups)

    def _managed(self, document_id: str) -> DocumentRecord:
        with self.ingestor.db.session() as s:
            rec = s.get(DocumentRecord, document_id)
        if rec is None:
            raise NotFoundError(f"no document {document_id}")
        if rec.source != UPLOAD_SOURCE:
            raise KBError(
                f"document {document_id} comes from the folder {rec.source}: change, move or "
                "re-group it there (metadata files) and run `kb ingest` on the folder",
                code="CONFLICT",
            )
        return rec


def _source_file(
    path: Path, document_id: str, groups: Sequence[str], title: str | None
) -> SourceFile:
    return SourceFile(
        path=path,
        relpath=path.name,
        document_id=document_id,
        groups=tuple(sorted(set(groups))),
        title=title or None,
    )
