"""Documents: the catalog and the cited originals, behind the same access check as answers."""

from __future__ import annotations

import html
import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import select

from api.deps import DBDep, IdentityDep, KBDep
from db.models import DocumentRecord
from retrieval.errors import NotFoundError

router = APIRouter(prefix="/api/documents", tags=["documents"])

# Formats a browser opens at a location by itself (#page=N for PDF, #id for HTML); the others
# get an HTML view built from the indexed chunks, with an element id per location.
_NATIVE = {".pdf", ".html", ".htm", ".txt"}
# Uploaded HTML is served from our origin: no scripts, no remote loads.
_SOURCE_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


def _visible(db: DBDep, identity: IdentityDep, document_id: str) -> DocumentRecord:
    with db.session() as s:
        rec = s.get(DocumentRecord, document_id)
    # A document the caller may not read is reported exactly like one that does not exist.
    if rec is None or rec.status == "failed" or not identity.acl.permits(tuple(rec.groups)):
        raise NotFoundError(f"no document {document_id}")
    return rec


@router.get("")
def list_documents(db: DBDep, identity: IdentityDep) -> list[dict[str, object]]:
    """Documents the caller may read, with their status."""
    with db.session() as s:
        rows = (
            s.execute(select(DocumentRecord).order_by(DocumentRecord.source_path)).scalars().all()
        )
    return [
        {
            "id": r.id,
            "title": r.title,
            "source_path": r.source_path,
            "version": r.version,
            "hash": r.hash,
            "chunk_count": r.chunk_count,
            "groups": r.groups,
            "status": r.status,
            "last_ingested": r.last_ingested.isoformat() if r.last_ingested else None,
            "last_error": r.last_error,
        }
        for r in rows
        if identity.acl.permits(tuple(r.groups))
    ]


@router.get("/{document_id}/source", response_model=None)
def source(
    document_id: str, db: DBDep, identity: IdentityDep, kb: KBDep, download: bool = False
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
    return HTMLResponse(_render_view(rec, kb), headers={"Content-Security-Policy": _SOURCE_CSP})


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    for enc in ("utf-8", "cp932", "euc_jp"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


def _render_view(rec: DocumentRecord, kb: KBDep) -> str:
    parts: list[str] = []
    seen: set[str] = set()
    last_label = None
    for passage in kb.store.document_chunks(rec.id):
        chunk = passage.chunk
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
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:52rem;"
        "margin:2rem auto;padding:0 1rem;line-height:1.6}h2{font-size:1.05rem;margin-top:2rem}"
        ":target{background:#fff6c4}</style></head><body>"
        f"<h1>{title}</h1><p><a href='?download=1'>Download the original</a></p>"
        f"{body}</body></html>"
    )
