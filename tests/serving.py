"""The app over a knowledge base and database that a test opened itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from kb.db.engine import Database
from kb.retrieval.service import KnowledgeBase


def serving(
    kb: KnowledgeBase, db: Database
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan for ``create_app`` that serves ``kb`` and ``db`` (the test closes them),
    runs the notification worker of the app's settings like the real lifespan, and stops it
    and the app's ingestion runner on the way out."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from kb.api.app import start_notifier, stop_notifier

        app.state.kb, app.state.db = kb, db
        start_notifier(app, db, app.state.settings)
        yield
        stop_notifier(app)
        runner = getattr(app.state, "runner", None)
        if runner is not None:
            runner.shutdown()

    return lifespan
