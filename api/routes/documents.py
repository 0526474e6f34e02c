"""Documents: the catalog and the cited originals, behind the same access check as answers;
uploads, new versions, deletion and access groups for content owners (issue 5)."""

from __future__ import annotations

import html
import json
import mimetypes
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from kb.api.deps import AuditDep, DBDep, DocumentsDep, EmployeeDep, KBDep, WriterDep
from kb.api.errors import error_response
from kb.api.responses import DocumentOut, DocumentVersionOut, UploadResult
from kb.db.models import DocumentRecord, DocumentVersion
from kb.ingest.pipeline import IngestReport
from kb.ingest.uploads import Refusal, Upload, UploadOutcome
from kb.retrieval.errors import KBError, NotFoundError
from kb.retrieval.versions import current_versions
from kb.services.access import Access

router = APIRouter(prefix="/api/documents", tags=["documents"])

# Formats a browser opens at a location by itself (#page=N for PDF, #id for HTML); the others
# get an HTML view built from the indexed chunks, with an element id per location.
_NATIVE = {".pdf", ".html", ".htm", ".txt"}
# An original is served from our origin, so nothing in it may run as our origin (issue 20):
# ``sandbox`` without ``allow-scripts`` or ``allow-same-origin`` puts the response in an opaque
# origin with scripts, forms, plugins' scripting and pop-ups off (a PDF's JavaScript, an HTML
# page's scripts); no remote loads; only our own pages may frame it. The PDF stays inline so
# that ``#page=N`` opens its page where the browser's viewer works in a sandbox (Firefox);
# elsewhere ``?download=1`` gives the file as an attachment.
_SOURCE_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


def _visible(db: DBDep, identity: EmployeeDep, document_id: str) -> DocumentRecord:
    with db.session() as s:
        rec = s.get(DocumentRecord, document_id)
    # A document the caller may not read is reported exactly like one that does not exist.
    if (
        rec is None
        or rec.status not in ("indexed", "stale")
        or not identity.access.reads(rec.groups)
    ):
        raise NotFoundError(f"no document {document_id}")
    return rec


def _writable(
    db: DBDep, identity: WriterDep, document_id: str, new_groups: list[str] | None = None
) -> DocumentRecord:
    """The document, when the caller may change it (issue 19); checked before any write."""
    with db.session() as s:
        rec = s.get(DocumentRecord, document_id)
    return identity.access.check_document_write(rec, document_id, new_groups)


def document_json(r: DocumentRecord, *, owner: bool = True) -> dict[str, object]:
    """A catalog entry as the API shows it. ``owner`` (content owners, admins): with where it
    comes from on the server; others see its title and source URL, never a server path
    (issue 20): the source is ``folder``, ``upload`` or ``staff-answers`` and a failure's
    reason (which can name files) is left out."""
    data = _document_fields(r)
    if not owner:
        data["source"] = (
            "folder" if r.source.startswith(("/", "\\")) or ":" in r.source else r.source
        )
        data["last_error"] = None
    return data


def _owner(identity: EmployeeDep) -> bool:
    from kb.services.auth import has_role

    return has_role(identity.roles, "content_owner")


def _document_fields(r: DocumentRecord) -> dict[str, object]:
    return {
        "id": r.id,
        "title": r.title,
        "url": f"/api/documents/{r.id}/source",
        "source": r.source,
        "source_path": r.source_path,
        "version": r.version,
        "hash": r.hash,
        "chunk_count": r.chunk_count,
        "groups": r.groups,
        "status": r.status,
        "size_bytes": r.size_bytes,
        "last_ingested": r.last_ingested.isoformat() if r.last_ingested else None,
        "last_error": r.last_error,
        # Text that reads like instructions to a model, for the content owner (issue 7).
        "flags": list(r.flags or []),
    }


@router.get("", response_model=list[DocumentOut], response_model_exclude_unset=True)
def list_documents(db: DBDep, identity: EmployeeDep) -> list[dict[str, object]]:
    """Documents the caller may read, with their status."""
    with db.session() as s:
        rows = (
            s.execute(select(DocumentRecord).order_by(DocumentRecord.source_path)).scalars().all()
        )
    access = identity.access
    owner = _owner(identity)
    return [
        document_json(r, owner=owner)
        for r in rows
        if r.status != "pending" and access.reads(r.groups)
    ]


class GroupsPatch(BaseModel):
    """New access groups of a document (empty: public)."""

    model_config = ConfigDict(extra="forbid")

    groups: list[Annotated[str, Field(min_length=1, max_length=128)]]


@router.post(
    "",
    status_code=201,
    response_model=None,
    responses={201: {"model": UploadResult}, 413: {}, 422: {}},
)
def upload_documents(
    file: Annotated[list[UploadFile], File(description="One or more files (repeat the part).")],
    identity: WriterDep,
    documents: DocumentsDep,
    db: DBDep,
    audit: AuditDep,
    groups: Annotated[str, Form(description="Comma-separated or a JSON list; empty: public")] = "",
    title: Annotated[str | None, Form()] = None,
) -> Response:
    """Upload new documents; each file is indexed as version 1 of a new document."""
    parsed = _parse_groups(groups)
    identity.access.check_new_groups(parsed)
    outcome = documents.add(
        [Upload(f.filename or "", f.file) for f in file],
        groups=parsed,
        title=title,
        created_by=identity.user_id,
    )
    for f in outcome.report.files if outcome.report else []:
        audit(
            identity,
            "document.upload",
            f.document_id,
            name=f.path,
            outcome=f.outcome,
            groups=parsed,
        )
    return _outcome_response(outcome, db, status=201)


@router.put(
    "/{document_id}",
    response_model=None,
    responses={200: {"model": UploadResult}, 409: {}, 413: {}, 422: {}},
)
def replace_document(
    document_id: str,
    file: Annotated[UploadFile, File()],
    identity: WriterDep,
    documents: DocumentsDep,
    db: DBDep,
    audit: AuditDep,
) -> Response:
    """Upload a new version of an uploaded document (same bytes: nothing changes)."""
    _writable(db, identity, document_id)
    outcome = documents.replace(
        document_id, Upload(file.filename or "", file.file), created_by=identity.user_id
    )
    audit(
        identity,
        "document.replace",
        document_id,
        name=file.filename,
        outcome=[f.outcome for f in outcome.report.files] if outcome.report else [],
    )
    return _outcome_response(outcome, db, status=200)


@router.delete("/{document_id}", status_code=204, responses={409: {}})
def delete_document(
    document_id: str, identity: WriterDep, documents: DocumentsDep, db: DBDep, audit: AuditDep
) -> Response:
    """Delete an uploaded document: its passages, history and stored files."""
    _writable(db, identity, document_id)
    documents.delete(document_id)
    audit(identity, "document.delete", document_id)
    return Response(status_code=204)


@router.patch(
    "/{document_id}",
    response_model=DocumentOut,
    responses={409: {}},
    response_model_exclude_unset=True,
)
def set_groups(
    document_id: str,
    body: GroupsPatch,
    identity: WriterDep,
    documents: DocumentsDep,
    db: DBDep,
    audit: AuditDep,
) -> dict[str, object]:
    """Change who may read an uploaded document; the index is updated without re-embedding."""
    _writable(db, identity, document_id, body.groups)
    documents.set_groups(document_id, body.groups)
    audit(identity, "document.groups", document_id, groups=sorted(set(body.groups)))
    with db.session() as s:
        rec = s.get(DocumentRecord, document_id)
    if rec is None:  # deleted in between
        raise NotFoundError(f"no document {document_id}")
    return document_json(rec)


@router.get("/{document_id}", response_model=DocumentOut, response_model_exclude_unset=True)
def get_document(document_id: str, db: DBDep, identity: EmployeeDep) -> dict[str, object]:
    """One document's catalog entry."""
    return document_json(_visible(db, identity, document_id), owner=_owner(identity))


@router.get(
    "/{document_id}/versions",
    response_model=list[DocumentVersionOut],
    response_model_exclude_unset=True,
)
def list_versions(document_id: str, db: DBDep, identity: EmployeeDep) -> list[dict[str, object]]:
    """The document's version history, newest first: hash, chunks, when and by whom."""
    _visible(db, identity, document_id)
    with db.session() as s:
        rows = (
            s.execute(
                select(DocumentVersion)
                .where(DocumentVersion.document_id == document_id)
                .order_by(DocumentVersion.version.desc(), DocumentVersion.id.desc())
            )
            .scalars()
            .all()
        )
    return [
        {
            "version": v.version,
            "hash": v.hash,
            "chunk_count": v.chunk_count,
            "created_by": v.created_by,
            "created_at": v.created_at.isoformat(),
        }
        for v in rows
    ]


def _parse_groups(raw: str) -> list[str]:
    raw = raw.strip()
    if raw.startswith("["):
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise KBError(f"groups: invalid JSON list ({exc})", code="VALIDATION_ERROR") from exc
        if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
            raise KBError("groups: expected a list of names", code="VALIDATION_ERROR")
        return sorted({g.strip() for g in value if g.strip()})
    return sorted({g.strip() for g in raw.split(",") if g.strip()})


def _outcome_response(outcome: UploadOutcome, db: DBDep, *, status: int) -> Response:
    """Per-file results; when no file made it, the first file's error in the one error shape."""
    report: IngestReport | None = outcome.report
    refused: list[Refusal] = list(outcome.refused)
    done: list[dict[str, object]] = []
    for f in report.files if report else []:
        if f.outcome == "failed":
            refused.append(Refusal(f.path, "PARSE_ERROR", f.error or "could not be indexed"))
            continue
        with db.session() as s:
            rec = s.get(DocumentRecord, f.document_id)
        if rec is not None:
            done.append({**document_json(rec), "outcome": f.outcome})
    failed = [{"name": r.name, "error_code": r.code, "detail": r.detail} for r in refused]
    if not done:
        first = refused[0] if refused else Refusal("", "VALIDATION_ERROR", "no file was sent")
        detail = "; ".join(f"{r.name}: {r.detail}" for r in refused) or first.detail
        return error_response(first.code, detail)
    body = {"run_id": report.run_id if report else None, "documents": done, "failed": failed}
    return JSONResponse(body, status_code=status)


@router.get(
    "/{document_id}/source",
    response_class=HTMLResponse,
    responses={200: {"description": "An HTML view, or the original file (PDF, HTML, text)."}},
)
def source(
    document_id: str, db: DBDep, identity: EmployeeDep, kb: KBDep, download: bool = False
) -> Response:
    """The cited original (PDF, HTML, text), or an HTML view of it with an anchor per location."""
    rec = _visible(db, identity, document_id)
    path = Path(rec.stored_path)
    if download or rec.suffix in _NATIVE:
        if not path.is_file():
            raise NotFoundError(f"the original of {document_id} is no longer available")
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if rec.suffix == ".txt":
            media = "text/plain; charset=utf-8"
            return Response(
                _read_text(path), media_type=media, headers={"Content-Security-Policy": _SOURCE_CSP}
            )
        disposition = "attachment" if download else "inline"
        return FileResponse(
            path,
            media_type=media,
            content_disposition_type=disposition,
            filename=path.name,
            headers={"Content-Security-Policy": _SOURCE_CSP},
        )
    return HTMLResponse(
        _render_view(rec, kb, identity.access), headers={"Content-Security-Policy": _SOURCE_CSP}
    )


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    for enc in ("utf-8", "cp932", "euc_jp"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


def _render_view(rec: DocumentRecord, kb: KBDep, access: Access) -> str:
    parts: list[str] = []
    seen: set[str] = set()
    last_label = None
    # Mid-replacement the store holds two versions: the view shows one, like searches.
    for passage in current_versions(kb.store.document_chunks(rec.id)):
        chunk = passage.chunk
        if not access.reads(chunk.groups):  # a Q&A sheet's restricted row
            continue
        loc = chunk.location
        anchor = loc.fragment().lstrip("#")
        label = loc.label()
        if label != last_label:
            attr = f' id="{html.escape(anchor)}"' if anchor and anchor not in seen else ""
            seen.add(anchor)
            parts.append(f"<h2{attr}>{html.escape(label or rec.title)}</h2>")
            last_label = label
        if chunk.question:
            parts.append(f"<p class=q><strong>Q.</strong> {html.escape(chunk.question)}</p>")
        parts.append(f"<p>{html.escape(chunk.text)}</p>")
    title = html.escape(rec.title)
    body = "\n".join(parts)
    # Staff answers (suffix .qa) have no file: the view is all there is.
    original = "<p><a href='?download=1'>Download the original</a></p>" if rec.stored_path else ""
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:52rem;"
        "margin:2rem auto;padding:0 1rem;line-height:1.6}h2{font-size:1.05rem;margin-top:2rem}"
        ":target{background:#fff6c4}</style></head><body>"
        f"<h1>{title}</h1>{original}"
        f"{body}</body></html>"
    )
