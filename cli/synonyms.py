"""``kb synonyms``: the staff vocabulary as CSV (one set per row, one term per column).

Changes apply to the next question of a running service; nothing is re-ingested.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import click

from kb.cli.common import audit, open_db


@click.group()
def synonyms() -> None:
    """Sets of equivalent terms (abbreviations, internal names) applied to questions."""


@synonyms.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_csv(file: Path) -> None:
    """Add one set per row of FILE.csv (one term per column; UTF-8, a BOM is fine)."""
    from kb.services.synonyms import import_sets

    text = file.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    with open_db() as db:
        added, errors = import_sets(db, rows, created_by="cli")
        audit(db, "synonyms.imported", str(file), added=added, errors=len(errors))
    for error in errors:
        click.echo(f"skipped {error}", err=True)
    click.echo(f"{added} set(s) added, {len(errors)} skipped")
    if errors and not added:
        raise click.ClickException("no set was added")


@synonyms.command("export")
def export_csv() -> None:
    """Print every set as CSV on stdout (the format ``kb synonyms import`` reads)."""
    from kb.services.synonyms import list_sets

    with open_db() as db:
        sets = list_sets(db)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    for s in sets:
        writer.writerow(s["terms"])
