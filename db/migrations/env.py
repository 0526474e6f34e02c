"""Alembic environment: runs on the connection handed over by ``db.engine.upgrade``."""

from alembic import context

from kb.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the project always passes a connection
    raise RuntimeError("run migrations through db.engine.upgrade()")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
