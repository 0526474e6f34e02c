"""The FastAPI application: ``create_app(settings)``; models and stores load in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.errors import register_error_handlers
from api.routes import ask, documents, health
from db.engine import Database
from retrieval.service import KnowledgeBase
from retrieval.settings import Settings

log = logging.getLogger("kb.api")
FRONTEND = Path(__file__).resolve().parent.parent / "frontend"

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def default_lifespan(settings: Settings) -> Lifespan:
    """Open the database and the knowledge base, warm the models, close both at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.db_url())
        db.migrate()
        kb = KnowledgeBase.open(settings)
        kb.warm_up()
        app.state.db, app.state.kb = db, kb
        try:
            yield
        finally:
            kb.close()
            db.dispose()

    return lifespan


def create_app(settings: Settings, *, lifespan: Lifespan | None = None) -> FastAPI:
    """Build the app. Tests pass their own settings (and, where needed, a lifespan)."""
    app = FastAPI(
        title="Knowledge-base assistant",
        version="0.1.0",
        description="Cited answers from the company's manuals and Q&A, or an honest escalation.",
        lifespan=lifespan or default_lifespan(settings),
    )
    app.state.settings = settings
    app.state.kb = None
    register_error_handlers(app)
    app.include_router(health.router)
    app.include_router(ask.router)
    app.include_router(documents.router)
    app.mount("/static", StaticFiles(directory=FRONTEND), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(FRONTEND / "index.html")

    return app
