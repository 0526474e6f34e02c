"""Relational storage (SQLAlchemy 2 + Alembic): catalog, versions, runs, query log."""
