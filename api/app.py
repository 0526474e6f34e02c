"""The FastAPI application: ``create_app(settings)``; models and stores load in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from kb.api.deps import make_runner
from kb.api.errors import ErrorLanguageMiddleware, error_response, register_error_handlers
from kb.api.limits import LimitsMiddleware, address_bucket
from kb.api.observability import install as install_observability
from kb.api.proxies import ClientAddressMiddleware
from kb.api.routes import (
    analytics,
    ask,
    auth,
    chat,
    documents,
    evaluation,
    feedback,
    health,
    history,
    ingest,
    memory,
    notifications,
    pages,
    queue,
    suggestions,
    synonyms,
)
from kb.api.security import SecurityHeadersMiddleware
from kb.api.web_settings import WebSettings
from kb.db.engine import Database
from kb.ingest.uploads import FileStore
from kb.retrieval.service import KnowledgeBase
from kb.retrieval.settings import Settings
from kb.services.auth import Authenticator, check_dev_headers
from kb.services.notifications import Notifier

log = logging.getLogger(__name__)
FRONTEND = Path(__file__).resolve().parent.parent / "frontend"

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
UPLOAD_OVERHEAD = 64 * 1024
"""Room for the multipart framing and form fields around the files of one upload."""


def default_lifespan(settings: Settings) -> Lifespan:
    """Open the database and the knowledge base, warm the models, close both at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.db_url())
        try:
            # Several workers start at once: only `kb db upgrade` (or the embedded SQLite
            # default, one process) changes the schema (issue 24).
            db.check_schema(auto_upgrade=settings.auto_upgrade())
        except Exception:
            db.dispose()
            raise
        kb = KnowledgeBase.open(settings)
        try:
            # Open the store now: a held or damaged folder is a start-up error naming it
            # (StoreLockedError / StoreError), not a 503 on the first question.
            kb.store.count()
        except Exception:
            kb.close()
            db.dispose()
            raise
        kb.warm_up()
        app.state.db, app.state.kb = db, kb
        # The service owns the embedded store: it runs the ingestions, and first repairs what
        # a run killed with an earlier process left behind.
        app.state.runner = make_runner(kb, db, settings)
        app.state.runner.recover(FileStore(settings.files_dir(), settings.max_file_bytes))
        app.state.runner.refresh_terms()
        start_notifier(app, db, settings)
        try:
            yield
        finally:
            stop_notifier(app)
            app.state.runner.shutdown()
            kb.close()
            db.dispose()

    return lifespan


def start_notifier(app: FastAPI, db: Database, settings: Settings) -> None:
    """Start the escalation notifications' background worker (issue 23)."""
    app.state.notifier = Notifier(db, settings)
    app.state.notifier.start()


def stop_notifier(app: FastAPI) -> None:
    """Stop the worker started by :func:`start_notifier` (undelivered rows wait for the next)."""
    notifier: Notifier | None = getattr(app.state, "notifier", None)
    if notifier is not None:
        notifier.stop()


def create_app(
    settings: Settings, *, lifespan: Lifespan | None = None, web: WebSettings | None = None
) -> FastAPI:
    """Build the app. Tests pass their own settings (and, where needed, a lifespan).

    :raises KBError: development headers are on and the configured host is not loopback.
    """
    check_dev_headers(settings.auth)
    app = FastAPI(
        title="Knowledge-base assistant",
        version="0.1.0",
        description="Cited answers from the company's manuals and Q&A, or an honest escalation.",
        lifespan=lifespan or default_lifespan(settings),
        # FastAPI's own /docs and /redoc load their scripts from a CDN, which an offline
        # install cannot reach: /docs is the packaged page below, or off (issue 20).
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api_docs else None,
    )
    app.state.settings = settings
    app.state.kb = None
    app.state.web = web or WebSettings()
    app.state.authenticator = Authenticator(settings)
    register_error_handlers(app)
    app.include_router(health.router)
    app.include_router(ask.router)
    app.include_router(documents.router)
    app.include_router(feedback.router)
    app.include_router(history.router)
    app.include_router(queue.router)
    app.include_router(analytics.router)
    app.include_router(ingest.router)
    app.include_router(suggestions.router)
    app.include_router(evaluation.router)
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(synonyms.router)
    app.include_router(notifications.router)
    app.include_router(chat.router)
    app.include_router(memory.router)

    @app.middleware("http")
    async def upload_limit(request: Request, call_next: Callable[..., Any]) -> Response:
        # Refuse an oversized upload before its body is read (issue 5); a request without a
        # length is held to the same limit while each file is copied.
        length = request.headers.get("content-length", "")
        if (
            request.method in ("POST", "PUT")
            and request.url.path.startswith("/api/documents")
            and length.isdigit()
            and int(length) > settings.max_file_bytes + UPLOAD_OVERHEAD
        ):
            return error_response(
                "FILE_TOO_LARGE",
                f"upload too large: {length} bytes > limit {settings.max_file_bytes}"
                " (KB_MAX_FILE_BYTES)",
            )
        response: Response = await call_next(request)
        return response

    # Outermost last: the client's real address first (proxies, issue 20), then CORS answers
    # preflights and tags every response, limits come next, security headers on every page.
    app.state.address_bucket = address_bucket(settings)
    app.add_middleware(LimitsMiddleware, settings=settings, bucket=app.state.address_bucket)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.auth.cors_origins),  # empty: no other origin is allowed
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["Retry-After"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(ClientAddressMiddleware, trusted_proxies=settings.trusted_proxies)
    # Every error below it, the limits' too, speaks the request's language (issue 25).
    app.add_middleware(ErrorLanguageMiddleware)
    # Around the limits: a 429 or 413 carries the security headers too.
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    # Outermost: request ids, the access log, metrics and /metrics, tracing (issue 24).
    install_observability(app, settings)

    _document_errors(app)
    app.mount("/static", StaticFiles(directory=FRONTEND), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(FRONTEND / "index.html")

    if settings.api_docs:

        @app.get("/docs", include_in_schema=False)
        def api_docs() -> FileResponse:
            return FileResponse(FRONTEND / "api-docs.html", headers={"Cache-Control": "no-cache"})

    return app


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error_code", "detail"],
    "properties": {
        "error_code": {"type": "string"},
        "detail": {"type": "string"},
        "message": {
            "type": "string",
            "description": "For people, in the language Accept-Language prefers (ja or en)",
        },
    },
}
_COMMON_ERRORS = {
    "401": "Missing, invalid or expired token (UNAUTHENTICATED)",
    "403": "The caller's role does not allow this (FORBIDDEN)",
    "413": "Request body too large (PAYLOAD_TOO_LARGE)",
    "429": "Rate limited (RATE_LIMITED); see Retry-After",
    "503": "Database or store unavailable",
}


def _document_errors(app: FastAPI) -> None:
    """Make the schema tell the truth about errors: one shape (``{error_code, detail}``), also
    for 422, and the auth, limit and availability errors every API route can answer."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["HTTPValidationError"] = ERROR_SCHEMA
        components["Error"] = ERROR_SCHEMA
        ref = {"$ref": "#/components/schemas/Error"}
        for path, item in schema.get("paths", {}).items():
            if not path.startswith("/api/"):
                continue
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                for status, text in _COMMON_ERRORS.items():
                    responses.setdefault(
                        status,
                        {"description": text, "content": {"application/json": {"schema": ref}}},
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
