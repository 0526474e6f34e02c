"""``kb serve``: the API and the web pages, in uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from kb.cli.common import load_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API and the web page."""
    import uvicorn

    from kb.retrieval.errors import KBError
    from kb.services.auth import check_dev_headers

    settings = load_settings()
    try:
        check_dev_headers(settings.auth, host)
    except KBError as exc:
        raise click.ClickException(exc.detail) from exc
    # The app checks it again at start-up (uvicorn api.main:app reads the same settings).
    os.environ["KB_AUTH__HOST"] = host
    if workers > 1 and not settings.qdrant.url:
        raise click.ClickException(
            "the embedded store belongs to one process: use --workers 1, or a Qdrant server "
            "(KB_QDRANT__URL) for several workers"
        )
    if not settings.qdrant.url:
        _check_store_free(settings)
    _check_schema(settings)
    if workers > 1:
        _metrics_folder()
    from kb.retrieval.logs import logging_config

    # uvicorn's own proxy handling trusts X-Forwarded-For from loopback peers: off, the app
    # honours it from KB_TRUSTED_PROXIES only (api/proxies.py, issue 20). Its access log is
    # off too: the app writes one with the request id (kb.access, issue 24).
    uvicorn.run(
        "kb.api.main:app",
        host=host,
        port=port,
        workers=workers,
        factory=False,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=logging_config(settings.log),
    )


def _metrics_folder() -> None:
    """Several workers: prometheus-client's multiprocess mode, in a folder emptied now (the
    samples of a previous run would be summed in), so that /metrics of any worker tells all."""
    import shutil
    import tempfile

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        Path(folder).mkdir(parents=True, exist_ok=True)
    else:
        folder = tempfile.mkdtemp(prefix="kb-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def _check_schema(settings: Any) -> None:
    """Fail in one line, before uvicorn starts, on a database behind the code (issue 24)."""
    from kb.db.engine import Database, SchemaError

    db = Database(settings.db_url())
    try:
        db.check_schema(auto_upgrade=settings.auto_upgrade())
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        db.dispose()


def _check_store_free(settings: Any) -> None:
    """Fail in one line, before uvicorn starts, when the embedded store is held or damaged."""
    from kb.retrieval.errors import StoreError
    from kb.retrieval.stores import open_store

    store = open_store(settings)
    try:
        store.count()
    except StoreError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        store.close()
