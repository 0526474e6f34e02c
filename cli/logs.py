"""``kb purge-logs``: the query log's retention."""

from __future__ import annotations

import json

import click

from kb.cli.common import load_settings, open_db


@click.command("purge-logs")
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
    from kb.services.retention import purge_logs as purge

    settings = load_settings()
    keep = days or settings.support.retention_days
    with open_db(settings) as db:
        counts = purge(db, days=keep, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({"days": keep, "dry_run": dry_run, **counts}, indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} (older than {keep} days): "
        + ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items())
    )
