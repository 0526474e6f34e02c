"""``kb``: the command line. Thin commands over ``ingest.pipeline`` and ``retrieval.service``.

User errors print one line (``Error: ...``) and exit 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from retrieval.offline import stay_offline

stay_offline()


def _settings() -> Any:
    from retrieval.settings import Settings

    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError names the bad setting
        raise click.ClickException(f"invalid settings: {exc}") from exc


@contextmanager
def _open_kb(settings: Any) -> Iterator[Any]:
    from retrieval.errors import KBError
    from retrieval.service import KnowledgeBase

    try:
        kb = KnowledgeBase.open(settings)
    except KBError as exc:
        raise click.ClickException(exc.detail) from exc
    try:
        yield kb
    finally:
        kb.close()


def _check_recreate(settings: Any, path: Path) -> None:
    """Refuse ``--recreate`` when the catalog holds documents that PATH would not bring back."""
    from db.engine import Database
    from ingest.pipeline import other_sources

    if not path.exists():
        raise click.ClickException(f"{path} does not exist")
    db = Database(settings.db_url())
    try:
        db.migrate()
        others = other_sources(db, str(path.resolve()))
    finally:
        db.dispose()
    if others:
        listed = ", ".join(f"{src} ({n})" for src, n in sorted(others.items()))
        raise click.ClickException(
            f"--recreate would drop documents that {path} does not hold, from: {listed}; "
            "remove those sources first, or rebuild without --recreate"
        )


@click.group()
@click.version_option("0.1.0", prog_name="kb")
def main() -> None:
    """Knowledge-base assistant: ingest documents, ask questions, serve the API, evaluate."""


@main.command()
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
    from tqdm import tqdm

    from ingest.pipeline import Ingestor
    from retrieval.errors import KBError, StoreLockedError
    from retrieval.service import KnowledgeBase

    settings = _settings()
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
        bar = tqdm(
            total=0, unit="file", disable=as_json or not sys.stderr.isatty(), file=sys.stderr
        )

        def progress(name: str, done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(name[-40:])
            bar.refresh()

        # Parsing in a worker process holds each file to KB_INGEST__MAX_SECONDS (issue 20);
        # with no answers to protect here, it embeds with every thread of KB_EMBEDDER__THREADS.
        worker = None
        if settings.ingest.isolated:
            from ingest.worker import IngestWorker

            worker = IngestWorker(
                settings.embedder, settings.ingest, threads=settings.embedder.threads
            )
        ingestor = Ingestor(kb, progress=progress, worker=worker)
        try:
            report = ingestor.sync_folder(path, reindex=reindex or recreate)
        except KBError as exc:
            raise click.ClickException(exc.detail) from exc
        finally:
            bar.close()
            if worker is not None:
                worker.close()
        _audit_ingest(ingestor.db, path, report)
    finally:
        kb.close()
    _print_report({**report.to_dict(), "status": "finished"}, as_json)


def _audit_ingest(db: Any, path: Path, report: Any) -> None:
    """Record a local ingestion run in the audit log (runs through the API record their own)."""
    import getpass

    from api.services.audit import record

    data = report.to_dict()
    counts = {k: data.get(k, 0) for k in ("added", "updated", "deleted", "failed")}
    record(
        db,
        actor=f"cli:{getpass.getuser()}",
        action="ingest.run",
        target=str(path.expanduser().resolve()),
        detail={"run_id": data["run_id"], **counts},
    )


def _print_report(data: dict[str, Any], as_json: bool) -> None:
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
        f"run {data['run_id']}: {data['added']} added, {data['updated']} updated, "
        f"{data['unchanged']} unchanged, {data['deleted']} deleted, {data['failed']} failed "
        f"in {data.get('seconds') or 0:.1f}s ({data.get('embedded_chunks', 0)} chunks embedded)"
        + ("" if status == "finished" else f" [{status}: {data.get('error') or 'see kb runs'}]")
    )


def _hand_over(
    settings: Any, path: Path, as_json: bool, locked: str, *, reindex: bool = False
) -> None:
    """The store is held by another process: give the run to the service and follow it."""
    import getpass
    import time

    import httpx

    from api.auth import Authenticator

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


@main.command()
@click.argument("run_id", required=False)
@click.option("-n", "limit", default=20, show_default=True, help="How many recent runs to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs(run_id: str | None, limit: int, as_json: bool) -> None:
    """List recent ingestion runs, or show one run's report (RUN_ID)."""
    from sqlalchemy import select

    from db.engine import Database
    from db.models import IngestRun
    from ingest.runner import run_json

    db = Database(_settings().db_url())
    db.migrate()
    try:
        with db.session() as s:
            if run_id:
                run = s.get(IngestRun, run_id)
                if run is None:
                    raise click.ClickException(f"no ingestion run {run_id}")
                rows = [run_json(run, files=True)]
            else:
                q = select(IngestRun).order_by(IngestRun.started_at.desc()).limit(limit)
                rows = [run_json(r, files=False) for r in s.execute(q).scalars().all()]
    finally:
        db.dispose()
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


@main.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print the same JSON as POST /api/ask.")
@click.option("--groups", default="", help="Comma-separated access groups of the asker.")
@click.option("--user", default="cli", help="User id recorded in the query log.")
@click.option("--lang", type=click.Choice(["ja", "en"]), default=None)
@click.option("--conversation", default=None, help="Follow up in this conversation of --user.")
def ask(
    question: str, as_json: bool, groups: str, user: str, lang: str | None, conversation: str | None
) -> None:
    """Ask the knowledge base a question."""
    from api.deps import Identity
    from api.routes.ask import answer_question
    from db.engine import Database

    if not question.strip():
        raise click.ClickException("the question is empty")
    settings = _settings()
    identity = Identity(
        user_id=user,
        groups=tuple(sorted({g.strip() for g in groups.split(",") if g.strip()})),
        roles=("employee",),
        department=None,
    )
    db = Database(settings.db_url())
    db.migrate()
    from retrieval.errors import KBError

    with _open_kb(settings) as kb:
        try:
            resp = answer_question(
                kb,
                db,
                identity,
                question.strip(),
                lang,  # type: ignore[arg-type]
                conversation_id=conversation,
            )
        except KBError as exc:  # POLICY_BLOCKED: the guidelines refuse the question
            raise click.ClickException(exc.detail) from exc
    if as_json:
        click.echo(json.dumps(resp.model_dump(), ensure_ascii=False, indent=2))
        return
    click.echo(resp.answer)
    for c in resp.citations:
        where = f", {c.location}" if c.location else ""
        click.echo(f"  [{c.n}] {c.title}{where} — {c.url}")
    mode = resp.mode + (f", fell back: {resp.fallback_reason}" if resp.fallback_reason else "")
    click.echo(f"({resp.status}, {mode}, confidence {resp.confidence:.2f})")
    click.echo(f"conversation: {resp.conversation_id}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API and the web page."""
    import uvicorn

    from api.auth import check_dev_headers
    from retrieval.errors import KBError

    settings = _settings()
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
    from retrieval.logs import logging_config

    # uvicorn's own proxy handling trusts X-Forwarded-For from loopback peers: off, the app
    # honours it from KB_TRUSTED_PROXIES only (api/proxies.py, issue 20). Its access log is
    # off too: the app writes one with the request id (kb.access, issue 24).
    uvicorn.run(
        "api.main:app",
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
    from db.engine import Database, SchemaError

    db = Database(settings.db_url())
    try:
        db.check_schema(auto_upgrade=settings.auto_upgrade())
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        db.dispose()


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


@main.command("purge-logs")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Keep this many days (default: KB_SUPPORT__RETENTION_DAYS, 365).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def purge_logs(days: int | None, dry_run: bool, as_json: bool) -> None:
    """Delete logged questions older than the retention period, with their feedback."""
    from api.services.retention import purge_logs as purge
    from db.engine import Database

    settings = _settings()
    keep = days or settings.support.retention_days
    db = Database(settings.db_url())
    try:
        db.migrate()
        counts = purge(db, days=keep, dry_run=dry_run)
    finally:
        db.dispose()
    if as_json:
        click.echo(json.dumps({"days": keep, "dry_run": dry_run, **counts}, indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} (older than {keep} days): "
        + ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items())
    )


def _register() -> None:
    from cli.audit import audit
    from cli.auth import tokens, users
    from cli.db import db_group
    from cli.synonyms import synonyms
    from eval.cli import eval_command, train_command

    main.add_command(audit)
    main.add_command(eval_command)
    main.add_command(train_command)
    main.add_command(users)
    main.add_command(tokens)
    main.add_command(synonyms)
    main.add_command(db_group)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
