"""The web pages (issue 6): support console, content, evaluation, vocabulary (issue 23), and the
widget demo page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(FRONTEND / name, headers={"Cache-Control": "no-cache"})


@router.get("/console")
def console() -> FileResponse:
    """Support console: the unanswered queue, answers and analytics."""
    return _page("console.html")


@router.get("/content")
def content() -> FileResponse:
    """Content page: documents, uploads and ingestion runs."""
    return _page("content.html")


@router.get("/evaluation")
def evaluation() -> FileResponse:
    """Evaluation runs with their headline metrics and reports."""
    return _page("evaluation.html")


@router.get("/vocabulary")
def vocabulary() -> FileResponse:
    """Staff vocabulary: sets of equivalent terms (content owners, admins)."""
    return _page("vocabulary.html")


@router.get("/demo")
def demo() -> FileResponse:
    """A demo intranet page with the widget embedded by one script tag."""
    return _page("demo.html")
