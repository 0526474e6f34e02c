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

# Offline by design: nothing may fetch a model or phone home, whatever the environment says.
for _var, _val in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "SCARF_NO_ANALYTICS": "true",
    "DO_NOT_TRACK": "true",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_var, _val)


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


@click.group()
@click.version_option("0.1.0", prog_name="kb")
def main() -> None:
    """Knowledge-base assistant: ingest documents, ask questions, serve the API, evaluate."""


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
def ingest(path: Path, as_json: bool) -> None:
    """Sync PATH (a folder or a file) into the knowledge base: add, update, skip, delete."""
    from tqdm import tqdm

    from ingest.pipeline import Ingestor
    from retrieval.errors import KBError

    settings = _settings()
    with _open_kb(settings) as kb:
        bar = tqdm(
            total=0, unit="file", disable=as_json or not sys.stderr.isatty(), file=sys.stderr
        )

        def progress(name: str, done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(name[-40:])
            bar.refresh()

        try:
            report = Ingestor(kb, progress=progress).sync_folder(path)
        except KBError as exc:
            raise click.ClickException(exc.detail) from exc
        finally:
            bar.close()
    data = report.to_dict()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for f in report.files:
        extra = (
            f" ({f.chunks} chunks, {f.seconds:.1f}s)" if f.outcome in ("added", "updated") else ""
        )
        reason = f": {f.error}" if f.error else ""
        click.echo(f"{f.outcome:>9}  {f.path}{extra}{reason}")
    click.echo(
        f"run {report.run_id}: {data['added']} added, {data['updated']} updated, "
        f"{data['unchanged']} unchanged, {data['deleted']} deleted, {data['failed']} failed "
        f"in {report.seconds:.1f}s ({report.embedded} chunks embedded)"
    )


@main.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print the same JSON as POST /api/ask.")
@click.option("--groups", default="", help="Comma-separated access groups of the asker.")
@click.option("--user", default="cli", help="User id recorded in the query log.")
@click.option("--lang", type=click.Choice(["ja", "en"]), default=None)
def ask(question: str, as_json: bool, groups: str, user: str, lang: str | None) -> None:
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
    with _open_kb(settings) as kb:
        resp = answer_question(kb, db, identity, question.strip(), lang)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps(resp.model_dump(), ensure_ascii=False, indent=2))
        return
    click.echo(resp.answer)
    for c in resp.citations:
        where = f", {c.location}" if c.location else ""
        click.echo(f"  [{c.n}] {c.title}{where} — {c.url}")
    click.echo(f"({resp.status}, confidence {resp.confidence:.2f})")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API and the web page."""
    import uvicorn

    settings = _settings()
    if workers > 1 and not settings.qdrant.url:
        raise click.ClickException(
            "the embedded store belongs to one process: use --workers 1, or a Qdrant server "
            "(KB_QDRANT__URL) for several workers"
        )
    uvicorn.run("api.main:app", host=host, port=port, workers=workers, factory=False)


def _register() -> None:
    from eval.cli import eval_command

    main.add_command(eval_command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
