"""``kb serve``: the API and the web pages, in uvicorn."""

from __future__ import annotations

import os
from typing import Any

import click

from cli.common import load_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API and the web page."""
    import uvicorn

    from retrieval.errors import KBError
    from services.auth import check_dev_headers

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
    # uvicorn's own proxy handling trusts X-Forwarded-For from loopback peers: off, the app
    # honours it from KB_TRUSTED_PROXIES only (api/proxies.py, issue 20).
    uvicorn.run(
        "api.main:app",
        host=host,
        port=port,
        workers=workers,
        factory=False,
        proxy_headers=False,
        server_header=False,
    )


def _check_store_free(settings: Any) -> None:
    """Fail in one line, before uvicorn starts, when the embedded store is held or damaged."""
    from retrieval.errors import StoreError
    from retrieval.stores import open_store

    store = open_store(settings)
    try:
        store.count()
    except StoreError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        store.close()
