"""Progress and a time estimate for ``kb ingest`` (issue 25), and the run's summary line.

The first ingest embeds every passage (about a minute for ``docs_corpus/`` on two cores) and
said nothing meanwhile. The estimate is by bytes: the files done so far took this long for their
size, the rest will take as long for theirs. It is rough (a PDF page costs more than a Markdown
one) and says so with "about".
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

import click

REPORT_EVERY_S = 5.0
"""Seconds between two progress lines when stderr is not a terminal (logs, CI)."""


def _sizes(path: Path) -> dict[str, int]:
    """``{path relative to the synced folder: bytes}`` of the files under ``path``."""
    if path.is_file():
        return {path.name: path.stat().st_size}
    out: dict[str, int] = {}
    for f in path.rglob("*"):
        # Metadata files (.kbmeta.json, NAME.meta.json) are not documents.
        if f.is_file() and not f.name.startswith(".") and not f.name.endswith(".meta.json"):
            out[f.relative_to(path).as_posix()] = f.stat().st_size
    return out


def eta_text(seconds: float) -> str:
    """``about 40 s`` / ``about 3 min``."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    return f"about {round(seconds / 60)} min"


class IngestProgress:
    """The ``progress`` callback of :class:`ingest.pipeline.Ingestor` for the terminal: a
    bar with the files done and the time left on a terminal, a line every few seconds
    otherwise (nothing with ``--json``)."""

    def __init__(self, path: Path, *, quiet: bool, stream: TextIO | None = None) -> None:
        from tqdm import tqdm

        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self.sizes = _sizes(path)
        self.total_bytes = sum(self.sizes.values()) or 1
        self.done_bytes = 0
        self.current = ""
        self.started = time.monotonic()
        self.reported = 0.0
        self.first_run = False
        self.announced = False
        self.bar = tqdm(
            total=0,
            unit="file",
            disable=quiet or not self.tty,
            file=self.stream,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} files [{elapsed}{postfix}]",
            delay=0.5,  # nothing drawn for a path that fails at once
        )

    def announce(self, first_run: bool) -> None:
        """Say what is about to happen, once the first file starts (not for a path that turns
        out not to exist: that is a one-line error)."""
        self.first_run = first_run

    def _announce(self) -> None:
        if self.quiet or self.announced:
            return
        self.announced = True
        first_run = self.first_run
        mb = self.total_bytes / 1e6
        click.echo(f"ingesting {len(self.sizes)} files ({mb:.1f} MB)", file=self.stream)
        if first_run:
            click.echo(
                "first ingest: every passage is embedded once (docs_corpus/: 1-3 minutes "
                "on 2 cores); later runs reuse the cache and take seconds",
                file=self.stream,
            )

    def left(self, now: float) -> float | None:
        """Seconds left, by bytes; ``None`` before anything is done."""
        elapsed = now - self.started
        if self.done_bytes <= 0 or elapsed < 1:
            return None
        return elapsed * (self.total_bytes - self.done_bytes) / self.done_bytes

    def __call__(self, name: str, done: int, total: int) -> None:
        if name and not self.current:
            self._announce()
        if self.current:  # the previous file is finished
            self.done_bytes += self.sizes.get(self.current, 0)
        self.current = name
        now = time.monotonic()
        left = self.left(now)
        if self.tty:
            self.bar.total = total
            self.bar.n = done
            suffix = f", {eta_text(left)} left" if left is not None and done < total else ""
            self.bar.set_postfix_str(f"{name[-40:]}{suffix}".strip(", "))
            self.bar.refresh()
            return
        if self.quiet or not name or now - self.reported < REPORT_EVERY_S:
            return
        self.reported = now
        eta = f", {eta_text(left)} left" if left is not None else ""
        click.echo(
            f"ingest: {done}/{total} files, {now - self.started:.0f} s{eta} ({name})",
            file=self.stream,
        )

    def close(self) -> None:
        """End the bar."""
        self.bar.close()


def summary(data: dict[str, Any], total_chunks: int | None = None) -> str:
    """The run's closing line. Chunks indexed (what answers are searched and cited from, the
    content page's count) and texts embedded (passages and section titles the embedding
    cache lacked: the expensive part) are different counts and both are named."""
    chunks = sum(
        int(f.get("chunks") or 0)
        for f in data.get("files") or []
        if f.get("outcome") in ("added", "updated")
    )
    line = (
        f"run {data['run_id']}: {data['added']} added, {data['updated']} updated, "
        f"{data['unchanged']} unchanged, {data['deleted']} deleted, {data['failed']} failed "
        f"in {data.get('seconds') or 0:.1f}s; {chunks} chunks indexed "
        f"({data.get('embedded_chunks', 0)} texts embedded: passages and titles not in the cache)"
    )
    if total_chunks is not None:
        line += f"; the knowledge base holds {total_chunks} chunks"
    return line
