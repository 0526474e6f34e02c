"""``kb ask``: a question to the knowledge base, answered as ``POST /api/ask`` would."""

from __future__ import annotations

import json

import click

from kb.cli.common import load_settings, open_db, open_kb


@click.command()
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
    from kb.retrieval.errors import KBError
    from kb.services.ask import answer_question
    from kb.services.identity import Identity

    if not question.strip():
        raise click.ClickException("the question is empty")
    settings = load_settings()
    identity = Identity(
        user_id=user,
        groups=tuple(sorted({g.strip() for g in groups.split(",") if g.strip()})),
        roles=("employee",),
        department=None,
    )
    with open_db(settings) as db, open_kb(settings) as kb:
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
