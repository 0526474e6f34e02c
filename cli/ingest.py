"""``kb ingest`` and ``kb runs``: sync a folder into the knowledge base, list the runs.

When the service (``kb serve``) holds the embedded store, ``kb ingest`` hands its run to it
and follows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kb.cli.common import cli_actor, load_settings, open_db
from kb.cli.progress import IngestProgress, summary


def _check_recreate(settings: Any, path: Path) -> None:
    """Refuse ``--recreate`` when the catalog holds documents that PATH would not bring back."""
    from kb.ingest.catalog import other_sources

    if not path.exists():
        raise click.ClickException(f"{path} does not exist")
    with open_db(settings) as db:
        others = other_sources(db, str(path.resolve()))
    if others:
        listed = ", ".join(f"{src} ({n})" for src, n in sorted(others.items()))
        raise click.ClickException(
            f"--recreate would drop documents that {path} does not hold, from: {listed}; "
            "remove those sources first, or rebuild without --recreate"
        )


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@click.option(
    "--reindex",
    is_flag=True,
    help="Parse and index every file again, unchanged ones too (after an upgrade that "
    "changes parsing or chunking). Answers keep working meanwhile; with `kb serve` running "
    "the run is handed to it.",
)
@click.option(
    "--recreate",
    is_flag=True,
    help="Drop the whole index and build it again from PATH (after changing the embedding "
    "models or KB_QDRANT__QUANTIZATION). Refused while the index holds documents of other "
    "sources.",
)
def ingest(path: Path, as_json: bool, reindex: bool, recreate: bool) -> None:
    """Sync PATH (a folder or a file) into the knowledge base: add, update, skip, delete.

    When the service (`kb serve`) holds the embedded store, the run is handed to it
    (KB_SERVICE_URL) and followed until it ends (not with --recreate).
    """
    from kb.ingest.pipeline import Ingestor
    from kb.retrieval.errors import KBError, StoreLockedError
    from kb.retrieval.service import KnowledgeBase

    settings = load_settings()
    if recreate:
        _check_recreate(settings, path)
    try:
        kb = KnowledgeBase.open(settings, recreate=recreate)
    except StoreLockedError as exc:
        if recreate:
            raise click.ClickException(
                f"{exc.detail}; --recreate drops the whole index: stop `kb serve` first"
            ) from exc
        _hand_over(settings, path, as_json, exc.detail, reindex=reindex)
        return
    except KBError as exc:
        raise click.ClickException(exc.detail) from exc
    try:
        # A bar (or a line every few seconds) with the time left: the first run embeds every
        # passage and takes about a minute for the sample corpus (issue 25).
        progress = IngestProgress(path, quiet=as_json)
        progress.announce(first_run=kb.store.count() == 0)

        # Parsing in a worker process holds each file to KB_INGEST__MAX_SECONDS (issue 20);
        # with no answers to protect here, it embeds with every thread of KB_EMBEDDER__THREADS.
        worker = None
        if settings.ingest.isolated:
            from kb.ingest.worker import IngestWorker

            worker = IngestWorker(
                settings.embedder, settings.ingest, threads=settings.embedder.threads
            )
        ingestor = Ingestor(kb, progress=progress, worker=worker)
        try:
            report = ingestor.sync_folder(path, reindex=reindex or recreate)
        except KBError as exc:
            raise click.ClickException(exc.detail) from exc
        finally:
            progress.close()
            if worker is not None:
                worker.close()
        _audit_ingest(ingestor.db, path, report)
        total_chunks = kb.store.count()
    finally:
        kb.close()
    _print_report({**report.to_dict(), "status": "finished"}, as_json, total_chunks)


def _audit_ingest(db: Any, path: Path, report: Any) -> None:
    """Record a local ingestion run in the audit log (runs through the API record their own)."""
    from kb.services.audit import record

    data = report.to_dict()
    counts = {k: data.get(k, 0) for k in ("added", "updated", "deleted", "failed")}
    record(
        db,
        actor=cli_actor(),
        action="ingest.run",
        target=str(path.expanduser().resolve()),
        detail={"run_id": data["run_id"], **counts},
    )


def _print_report(data: dict[str, Any], as_json: bool, total_chunks: int | None = None) -> None:
    """A run report: JSON, or one line per file and a summary line."""
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for f in data.get("files") or []:
        extra = (
            f" ({f.get('chunks', 0)} chunks, {f.get('seconds') or 0:.1f}s)"
            if f["outcome"] in ("added", "updated")
            else ""
        )
        reason = f": {f['error']}" if f.get("error") else ""
        click.echo(f"{f['outcome']:>9}  {f['path']}{extra}{reason}")
        for flag in f.get("flags") or []:
            # Instruction-like text: indexed, neutralised in prompts, worth a look (issue 7).
            where = f" at {flag['location']}" if flag.get("location") else ""
            click.echo(f"{'flagged':>9}  {flag['kind']}{where}: {flag['excerpt']}")
    if data.get("terms_refreshed"):
        click.echo(
            f"{'refreshed':>9}  the search terms of {data['terms_refreshed']} documents "
            "(indexed by an earlier version)"
        )
    status = data.get("status", "finished")
    click.echo(
        summary(data, total_chunks)
        + ("" if status == "finished" else f" [{status}: {data.get('error') or 'see kb runs'}]")
    )


def _hand_over(
    settings: Any, path: Path, as_json: bool, locked: str, *, reindex: bool = False
) -> None:
    """The store is held by another process: give the run to the service and follow it."""
    import getpass
    import time

    import httpx

    from kb.services.auth import Authenticator

    base = settings.service_url.rstrip("/")
    # Signed with the data folder's secret, which the service shares: whoever may run
    # `kb ingest` on this store may already change it.
    token = Authenticator(settings).issue_service_token(getpass.getuser())
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            body = {"path": str(path.expanduser().resolve()), "reindex": reindex}
            resp = http.post("/api/ingest", json=body)
            if resp.status_code != 202:
                raise click.ClickException(f"the service at {base} refused the run: {_why(resp)}")
            run_id = resp.json()["run_id"]
            click.echo(f"the store is in use: run {run_id} handed to {base}", err=True)
            while True:
                got = http.get(f"/api/ingest/runs/{run_id}")
                if got.status_code != 200:
                    raise click.ClickException(f"cannot follow run {run_id}: {_why(got)}")
                run = got.json()
                if run["status"] not in ("queued", "running"):
                    break
                time.sleep(0.5)
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"{locked}. No service answers at {base} to take the run either "
            f"({exc.__class__.__name__}): start `kb serve`, set KB_SERVICE_URL to it, or stop "
            "the process holding the store"
        ) from exc
    _print_report({**run, "run_id": run_id}, as_json)
    if run["status"] != "finished":
        raise click.ClickException(f"run {run_id} ended {run['status']}: {run.get('error')}")


def _why(resp: Any) -> str:
    try:
        return str(resp.json().get("detail", resp.text))
    except ValueError:
        return f"HTTP {resp.status_code}"


@click.command()
@click.argument("run_id", required=False)
@click.option("-n", "limit", default=20, show_default=True, help="How many recent runs to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs(run_id: str | None, limit: int, as_json: bool) -> None:
    """List recent ingestion runs, or show one run's report (RUN_ID)."""
    from sqlalchemy import select

    from kb.db.models import IngestRun
    from kb.ingest.runner import run_json

    with open_db() as db, db.session() as s:
        if run_id:
            run = s.get(IngestRun, run_id)
            if run is None:
                raise click.ClickException(f"no ingestion run {run_id}")
            rows = [run_json(run, files=True)]
        else:
            q = select(IngestRun).order_by(IngestRun.started_at.desc()).limit(limit)
            rows = [run_json(r, files=False) for r in s.execute(q).scalars().all()]
    if run_id:
        _print_report({**rows[0], "run_id": rows[0]["id"]}, as_json)
        return
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        click.echo(
            f"{r['id']}  {r['status']:<11} {str(r['started_at'])[:19]}  +{r['added']} "
            f"~{r['updated']} ={r['unchanged']} -{r['deleted']} !{r['failed']}  {r['source']}"
        )
