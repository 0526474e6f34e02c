"""``kb db``: the database schema (issue 24)."""

from __future__ import annotations

import json

import click


@click.group("db")
def db_group() -> None:
    """The database schema: upgrade it, or show where it stands."""


@db_group.command("upgrade")
def upgrade() -> None:
    """Bring the schema to this version's newest migration (idempotent).

    Run it once per deployment before starting the service on a server database (PostgreSQL):
    `kb serve` refuses to start on a schema behind the code. Concurrent runs are safe (a
    PostgreSQL advisory lock serialises them). The embedded SQLite default upgrades itself.
    """
    from kb.cli.common import load_settings as _settings
    from kb.db.engine import Database, safe_url

    settings = _settings()
    db = Database(settings.db_url())
    try:
        before, after = db.migrate()
    except Exception as exc:  # driver errors name the cause: one line, not a traceback
        raise click.ClickException(f"cannot upgrade {safe_url(db.url)}: {exc}") from exc
    finally:
        db.dispose()
    was = ", ".join(sorted(before)) or "none"
    now = ", ".join(sorted(after))
    if before == after:
        click.echo(f"{safe_url(db.url)}: already at revision {now}")
    else:
        click.echo(f"{safe_url(db.url)}: upgraded from revision {was} to {now}")


@db_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Show the schema's revision and this version's; exit 1 when they differ."""
    from kb.cli.common import load_settings as _settings
    from kb.db.engine import Database, current_revisions, head_revisions, safe_url

    settings = _settings()
    db = Database(settings.db_url())
    try:
        with db.engine.connect() as conn:
            current = current_revisions(conn)
    except Exception as exc:
        raise click.ClickException(f"cannot read {safe_url(db.url)}: {exc}") from exc
    finally:
        db.dispose()
    heads = head_revisions()
    data = {
        "database": safe_url(db.url),
        "current": sorted(current),
        "head": sorted(heads),
        "up_to_date": current == heads,
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(
            f"{data['database']}: at {', '.join(sorted(current)) or 'none'}, code needs "
            f"{', '.join(sorted(heads))}" + ("" if current == heads else " (run `kb db upgrade`)")
        )
    if current != heads:
        raise SystemExit(1)
