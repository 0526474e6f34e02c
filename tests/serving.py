"""The app over a knowledge base and database that a test opened itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from db.engine import Database
from retrieval.service import KnowledgeBase


def serving(
    kb: KnowledgeBase, db: Database
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan for ``create_app`` that serves ``kb`` and ``db`` (the test closes them) and
    stops the app's ingestion runner on the way out."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.kb, app.state.db = kb, db
        yield
        runner = getattr(app.state, "runner", None)
        if runner is not None:
            runner.shutdown()

    return lifespan
