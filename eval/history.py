"""Run history: every run keeps a folder ``<out>/runs/<timestamp>/`` and a line in
``<out>/history.jsonl`` (time, commit, settings, the report's metrics without the curves), so a
run can be compared with the previous run of the same datasets.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HISTORY_FILE = "history.jsonl"
RUNS_DIR = "runs"

HEADLINE: tuple[tuple[str, str, bool], ...] = (
    # (group, key, higher is better); group "" means a top-level entry key
    ("retrieval", "recall@10", True),
    ("retrieval", "mrr@10", True),
    ("retrieval", "ndcg@10", True),
    ("answering", "deflection_rate", True),
    ("answering", "correct_deflection_rate", True),
    ("answering", "wrong_answer_rate", False),
    ("answering", "escalation_recall", True),
    ("answering", "auroc", True),
    ("", "faithfulness", True),
    ("latency_ms", "p95", False),
)
HEADLINE_LABELS = ("R@10", "MRR", "nDCG", "defl", "corr", "wrong", "esc", "AUROC", "faith", "p95ms")
_BULKY = ("curve",)


@dataclass(frozen=True, slots=True)
class MetricDelta:
    """One headline metric of one dataset, now and in the previous run."""

    dataset: str
    metric: str
    previous: float | None
    current: float | None
    higher_is_better: bool

    @property
    def change(self) -> float | None:
        """current - previous (None when either is missing)."""
        if self.previous is None or self.current is None:
            return None
        return self.current - self.previous


def git_commit(cwd: Path | None = None) -> str | None:
    """``git rev-parse HEAD`` in ``cwd`` (read-only), or None outside a repository."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and sha else None


def utc_now() -> datetime:
    """The current time in UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def new_run_dir(out: Path, started: datetime) -> Path:
    """Create and return ``<out>/runs/<YYYYmmddTHHMMSSZ>/`` (``-2``, ``-3``... if taken)."""
    base = out / RUNS_DIR / started.strftime("%Y%m%dT%H%M%SZ")
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def history_record(report: Mapping[str, Any], run_dir: Path | None = None) -> dict[str, Any]:
    """The history line for ``report``: run info plus every entry minus its bulky parts."""
    return {
        "time": report["run"]["started"],
        "commit": report["run"]["commit"],
        "settings": report["run"]["settings"],
        "run_dir": str(run_dir) if run_dir is not None else None,
        "datasets": {n: _slim(e) for n, e in report["datasets"].items()},
        "variants": [_slim(v) for v in report["variants"]],
    }


def append_history(out: Path, report: Mapping[str, Any], run_dir: Path | None = None) -> Path:
    """Append ``report``'s history line to ``<out>/history.jsonl``; :returns: that file."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / HISTORY_FILE
    line = json.dumps(history_record(report, run_dir), ensure_ascii=False, allow_nan=False)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    return path


def load_history(out: Path) -> list[dict[str, Any]]:
    """Every history line, oldest first (a truncated last line is skipped)."""
    path = out / HISTORY_FILE
    if not path.is_file():
        return []
    runs: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            runs.append(json.loads(line))
        except ValueError:
            continue
    return runs


def previous_run(
    history: Sequence[Mapping[str, Any]], datasets: Sequence[str] | set[str]
) -> Mapping[str, Any] | None:
    """The latest run in ``history`` over exactly the dataset names ``datasets``."""
    wanted = set(datasets)
    for record in reversed(history):
        if set(record.get("datasets", {})) == wanted:
            return dict(record)
    return None


def compare(current: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[MetricDelta]:
    """Headline deltas of the default configuration, per dataset of ``current``.

    Both arguments are reports or history lines (anything with a ``"datasets"`` mapping).
    """
    out: list[MetricDelta] = []
    before = (previous or {}).get("datasets", {})
    for name, entry in current["datasets"].items():
        old = before.get(name, {})
        for group, key, higher in HEADLINE:
            out.append(
                MetricDelta(
                    dataset=name,
                    metric=f"{group}.{key}" if group else key,
                    previous=_get(old, group, key),
                    current=_get(entry, group, key),
                    higher_is_better=higher,
                )
            )
    return out


def format_comparison(deltas: Sequence[MetricDelta], previous: Mapping[str, Any] | None) -> str:
    """One line per dataset: the change of each headline metric (``+0.012``), ``!`` after a
    change for the worse, ``n/a`` when either run lacks the number."""
    if previous is None:
        return "No previous run over the same datasets to compare with."
    commit = (previous.get("commit") or "no commit")[:12]
    names = list(dict.fromkeys(d.dataset for d in deltas))
    width = max([len("change"), *(len(n) for n in names)])
    lines = [
        f"Change since {previous.get('time')} ({commit}); ! = worse",
        f"{'change':<{width}} " + " ".join(f"{label:>8}" for label in HEADLINE_LABELS),
    ]
    for name in names:
        cells = [_delta_cell(d) for d in deltas if d.dataset == name]
        lines.append(f"{name:<{width}} " + " ".join(f"{c:>8}" for c in cells))
    return "\n".join(lines)


def _delta_cell(d: MetricDelta) -> str:
    change = d.change
    if change is None:
        return "n/a"
    worse = (change < 0) if d.higher_is_better else (change > 0)
    digits = 1 if d.metric.startswith("latency") else 3
    return f"{change:+.{digits}f}" + ("!" if worse and abs(change) > 1e-12 else "")


def _get(entry: Mapping[str, Any], group: str, key: str) -> float | None:
    value = entry.get(key) if not group else (entry.get(group) or {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _slim(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in _BULKY}
