"""``kb audit purge``: the audit log's retention (issue 20), explicit and itself audited."""

from __future__ import annotations

import json

import click

from kb.cli.common import cli_actor, load_settings, open_db


@click.group()
def audit() -> None:
    """The audit log (append-only): its retention."""


@audit.command("purge")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Keep this many days (default: KB_AUDIT_RETENTION_DAYS, 730).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def purge(days: int | None, dry_run: bool, as_json: bool) -> None:
    """Delete audit entries older than the retention period; the purge itself is recorded
    (action audit.purge, with the cut-off and the count)."""
    from kb.services.audit import purge as purge_entries

    settings = load_settings()
    keep = days or settings.audit_retention_days
    with open_db(settings) as db:
        result = purge_entries(db, days=keep, actor=cli_actor(), dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({"days": keep, **result}, indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {result['deleted']} audit entries older than {keep} days")
