"""The run's outputs: ``report.json`` (fixed shape), a self-contained ``report.html`` and a
one-screen text summary.

``report.json`` (docs/eval-datasets.md)::

    {"run": {"started", "commit", "settings"},
     "datasets": {NAME: ENTRY},              # the default configuration
     "variants": [{"dataset": NAME, **ENTRY}, ...]}
    ENTRY = {"variant", "retrieval": {RETRIEVAL_KEYS}, "answering": {ANSWERING_KEYS},
             "faithfulness", "latency_ms": {"p50", "p95"}, "index_seconds", "questions",
             "errors", + extras ("curve", "chosen_threshold", "subsets", "on_clean_gold", ...)}

The HTML embeds its plots as base64 PNG (matplotlib's Agg canvas, imported only when plotting)
and has no script, stylesheet link or any other reference outside the file.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kb.eval.metrics import ANSWERING_KEYS, RETRIEVAL_KEYS

ENTRY_KEYS = (
    "variant",
    "retrieval",
    "answering",
    "faithfulness",
    "latency_ms",
    "index_seconds",
    "questions",
    "errors",
)
DIGITS = 6


def dataset_entry(
    variant: str,
    summary: Mapping[str, Any],
    *,
    index_seconds: float | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One dataset's row of the report from :func:`eval.metrics.summarize` output, floats
    rounded to 6 places. Required keys come first; ``summary``'s other keys and ``extra``
    follow."""
    entry: dict[str, Any] = {
        "variant": variant,
        "retrieval": {k: summary["retrieval"][k] for k in RETRIEVAL_KEYS},
        "answering": {k: summary["answering"][k] for k in ANSWERING_KEYS},
        "faithfulness": summary["faithfulness"],
        "latency_ms": {"p50": summary["latency_ms"]["p50"], "p95": summary["latency_ms"]["p95"]},
        "index_seconds": index_seconds,
        "questions": summary["questions"],
        "errors": summary["errors"],
    }
    for key, value in summary.items():
        entry.setdefault(key, value)
    for key, value in (extra or {}).items():
        entry.setdefault(key, value)
    rounded: dict[str, Any] = _round(entry)
    return rounded


def build_report(
    *,
    started: str,
    commit: str | None,
    settings: Mapping[str, Any],
    datasets: Mapping[str, Mapping[str, Any]],
    variants: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Assemble ``report.json``; ``variants`` rows carry a ``"dataset"`` key.

    :raises ValueError: when an entry lacks a required key.
    """
    report = {
        "run": {"started": started, "commit": commit, "settings": dict(settings)},
        "datasets": {name: dict(entry) for name, entry in datasets.items()},
        "variants": [dict(v) for v in variants],
    }
    check_report_shape(report)
    return report


def check_report_shape(report: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first required key missing from ``report``."""
    for key in ("run", "datasets", "variants"):
        if key not in report:
            raise ValueError(f"report lacks {key!r}")
    for key in ("started", "commit", "settings"):
        if key not in report["run"]:
            raise ValueError(f"report.run lacks {key!r}")
    rows = [(f"datasets.{n}", e) for n, e in report["datasets"].items()]
    rows += [(f"variants[{i}]", e) for i, e in enumerate(report["variants"])]
    for where, entry in rows:
        for key in ENTRY_KEYS:
            if key not in entry:
                raise ValueError(f"{where} lacks {key!r}")
        for group, keys in (
            ("retrieval", RETRIEVAL_KEYS),
            ("answering", ANSWERING_KEYS),
            ("latency_ms", ("p50", "p95")),
        ):
            for key in keys:
                if key not in entry[group]:
                    raise ValueError(f"{where}.{group} lacks {key!r}")
    for i, entry in enumerate(report["variants"]):
        if "dataset" not in entry:
            raise ValueError(f"variants[{i}] lacks 'dataset'")


def write_report(report: Mapping[str, Any], folder: Path, *, plots: bool = True) -> list[Path]:
    """Write ``report.json`` and ``report.html`` into ``folder``; :returns: their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "report.json", folder / "report.html"
    json_path.write_text(
        json.dumps(report, ensure_ascii=False, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    html_path.write_text(render_html(report, plots=plots), encoding="utf-8")
    return [json_path, html_path]


# --- rows shared by the text summary and the HTML ------------------------------------------

_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (header, group, key): group "" means a top-level entry key
    ("R@1", "retrieval", "recall@1"),
    ("R@5", "retrieval", "recall@5"),
    ("R@10", "retrieval", "recall@10"),
    ("MRR", "retrieval", "mrr@10"),
    ("nDCG", "retrieval", "ndcg@10"),
    ("defl", "answering", "deflection_rate"),
    ("corr", "answering", "correct_deflection_rate"),
    ("wrong", "answering", "wrong_answer_rate"),
    ("esc", "answering", "escalation_recall"),
    ("AUROC", "answering", "auroc"),
    ("faith", "", "faithfulness"),
)


def report_rows(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(dataset, entry) for the default configuration, then each variant row."""
    rows: list[tuple[str, Mapping[str, Any]]] = list(report["datasets"].items())
    rows += [(str(v["dataset"]), v) for v in report["variants"]]
    return rows


def _cell(entry: Mapping[str, Any], group: str, key: str) -> Any:
    return entry.get(key) if not group else entry.get(group, {}).get(key)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _fmt_t(value: Any) -> str:
    # thresholds keep 4 significant digits: a fitted confidence can sit at 0.000115
    return "-" if value is None else f"{float(value):.4g}"


def render_summary(report: Mapping[str, Any], *, comparison: str | None = None) -> str:
    """A one-screen plain-text table of the headline metrics (and the comparison, if given)."""
    run = report["run"]
    commit = (run.get("commit") or "no commit")[:12]
    lines = [f"kb eval  {run.get('started', '')}  {commit}"]
    name_w = max([len("dataset"), *(len(n) for n, _ in report_rows(report))])
    var_w = max([len("variant"), *(len(str(e["variant"])) for _, e in report_rows(report))])
    head = f"{'dataset':<{name_w}} {'variant':<{var_w}} {'n':>4} {'err':>3} "
    head += " ".join(f"{h:>5}" for h, _, _ in _COLUMNS) + f" {'p50ms':>6} {'p95ms':>6}"
    lines += [head, "-" * len(head)]
    for name, entry in report_rows(report):
        row = f"{name:<{name_w}} {entry['variant']!s:<{var_w}} "
        row += f"{entry['questions']:>4} {entry['errors']:>3} "
        row += " ".join(f"{_fmt(_cell(entry, g, k)):>5}" for _, g, k in _COLUMNS)
        lat = entry["latency_ms"]
        row += f" {_fmt(lat['p50'], 0):>6} {_fmt(lat['p95'], 0):>6}"
        lines.append(row)
    for name, entry in report["datasets"].items():
        lines.append(f"{name}: {_threshold_line(entry)}")
        if entry.get("generation"):
            lines.append(f"{name}: {_generation_line(entry['generation'])}")
        if entry.get("without_history"):
            lines.append(f"{name}: {_history_line(entry)}")
    if comparison:
        lines += ["", comparison]
    return "\n".join(lines)


def _history_line(entry: Mapping[str, Any]) -> str:
    """``kb eval --history`` (issue 22): the test questions with and without the replayed past."""
    hist = entry.get("history") or {}
    now, before = entry["answering"], entry["without_history"]["answering"]
    parts = [
        f"{key} {_fmt(before.get(key))} -> {_fmt(now.get(key))}"
        for key in ("correct_deflection_rate", "wrong_answer_rate", "escalation_recall", "auroc")
    ]
    best_before = entry["without_history"].get("chosen_threshold") or {}
    best_now = entry.get("chosen_threshold") or {}
    if best_before or best_now:
        target = (best_now or best_before).get("target_wrong_answer_rate")
        parts.append(
            f"correct at wrong <= {_fmt(target, 2)} (best threshold of each) "
            f"{_fmt(best_before.get('correct_deflection_rate'))} -> "
            f"{_fmt(best_now.get('correct_deflection_rate'))}"
        )
    gain = hist.get("gain") or {}
    if gain.get("questions"):
        parts.append(
            f"change ({round(100 * gain['level'])}% interval, {gain['questions']} questions "
            "resampled): "
            + ", ".join(f"{key} {_change(gain.get(key) or {})}" for key in _GAIN_KEYS)
        )
    room = hist.get("headroom") or {}
    if room.get("answerable"):
        parts.append(
            f"headroom: {room['shared']} of {room['answerable']} answerable test questions share "
            f"a gold document with the history (gold first {room.get('first_without')} -> "
            f"{room.get('first_with')}, among the first three {room.get('top3_without')}, cited "
            f"with history {room.get('cited_with')}); the best gate at the wrong-answer rate "
            f"without it ({_fmt(room.get('without_wrong_rate'))}) answers "
            f"{_fmt(room.get('best_gate_correct'))} correctly"
        )
    splits = hist.get("splits") or []
    if splits:
        change = "; ".join(
            f"seed {sp['seed']} "
            + " ".join(
                f"{_fmt(sp['without_history'].get(key))} -> {_fmt(sp['answering'].get(key))}"
                for key in ("correct_deflection_rate", "wrong_answer_rate")
            )
            for sp in splits
        )
        parts.append(f"per split (correct, wrong): {change}")
        where = f"{len(splits)} splits pooled, the first: "
    else:
        where = ""
    return (
        f"with history ({where}{hist.get('questions')} questions, {hist.get('source')}, noise "
        f"{hist.get('feedback_noise')}, named source {hist.get('named_source')}, "
        f"{hist.get('memory_entries')} memory entries): " + ", ".join(parts)
    )


_GAIN_KEYS = ("correct_deflection_rate", "wrong_answer_rate")


def _change(entry: Mapping[str, Any]) -> str:
    """A change with its interval: ``+0.074 [+0.041, +0.108]``."""
    change, interval = entry.get("change"), entry.get("interval")
    if change is None:
        return "-"
    text = f"{change:+.3f}"
    return text + (f" [{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else "")


def _generation_line(gen: Mapping[str, Any]) -> str:
    """Generated answers (issue 7): how many, the model's own faithfulness, the fallbacks."""
    fallbacks = ", ".join(f"{k} {v}" for k, v in (gen.get("fallbacks") or {}).items())
    return (
        f"LLM asked {gen.get('asked', 0)}: generated {gen.get('generated', 0)}, "
        f"refused {gen.get('refused', 0)}, fell back {sum((gen.get('fallbacks') or {}).values())}"
        + (f" ({fallbacks})" if fallbacks else "")
        + f"; model faithfulness {_fmt(gen.get('model_faithfulness'))}, "
        f"generated answers' faithfulness {_fmt(gen.get('faithfulness'))}"
    )


def _threshold_line(entry: Mapping[str, Any]) -> str:
    ans = entry["answering"]
    now = f"threshold {_fmt_t(ans['threshold'])}"
    chosen = entry.get("chosen_threshold")
    if not chosen:
        return now + "; no threshold keeps the wrong-answer rate under target"
    return (
        f"{now}; best for wrong <= {_fmt(chosen['target_wrong_answer_rate'], 2)}: "
        f"{_fmt_t(chosen['threshold'])} (deflection {_fmt(chosen['deflection_rate'])}, "
        f"correct {_fmt(chosen['correct_deflection_rate'])}, "
        f"wrong {_fmt(chosen['wrong_answer_rate'])})"
    )


# --- HTML -----------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th:first-child,td:first-child,td.l{text-align:left}
th{background:#f3f3f3} h2{margin-top:2em} img{max-width:100%}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}
"""


def render_html(report: Mapping[str, Any], *, plots: bool = True) -> str:
    """A self-contained HTML page: headline table, per-dataset thresholds, curves and subsets,
    variant comparison and the settings. ``plots=False`` leaves the images out."""
    run = report["run"]
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>kb eval report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Evaluation report</h1>",
        f"<p>Started {e(str(run.get('started')))} &middot; commit "
        f"<code>{e(str(run.get('commit') or 'unknown'))}</code></p>",
        "<h2>Headline</h2>",
        _headline_table(report),
    ]
    for name, entry in report["datasets"].items():
        parts.append(f"<h2>{e(name)}</h2>")
        parts.append(f"<p>{e(_threshold_line(entry))}</p>")
        if entry.get("generation"):
            parts.append(f"<p>{e(_generation_line(entry['generation']))}</p>")
        parts.append(
            f"<p>Index: {_fmt(entry.get('index_seconds'), 1)} s &middot; latency p50 "
            f"{_fmt(entry['latency_ms']['p50'], 0)} ms, p95 {_fmt(entry['latency_ms']['p95'], 0)}"
            f" ms &middot; {entry['questions']} questions, {entry['errors']} errors</p>"
        )
        if entry.get("without_history"):
            parts.append(f"<p>{e(_history_line(entry))}</p>")
        if plots and entry.get("curve"):
            parts.append(_img(_plot_curve(name, entry["curve"], entry.get("chosen_threshold"))))
        if plots and (entry.get("learning_curve") or {}).get("points"):
            parts.append(_img(_plot_learning(name, entry["learning_curve"])))
        slices = dict(entry.get("subsets") or {})
        if entry.get("on_clean_gold"):
            slices["clean gold (containment >= 0.5)"] = entry["on_clean_gold"]
        if slices:
            parts.append(_slice_table(slices))
        rows = [entry, *(v for v in report["variants"] if v["dataset"] == name)]
        if plots and len(rows) > 1:
            parts.append(_img(_plot_variants(name, rows)))
    parts += [
        "<h2>Settings</h2>",
        "<pre>" + e(json.dumps(run.get("settings"), ensure_ascii=False, indent=2)) + "</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _headline_table(report: Mapping[str, Any]) -> str:
    e = html.escape
    head = "".join(
        f"<th>{h}</th>"
        for h in ["dataset", "variant", "n", "errors"]
        + [h for h, _, _ in _COLUMNS]
        + ["threshold", "p50 ms", "p95 ms", "index s"]
    )
    body = []
    for name, entry in report_rows(report):
        cells = [f'<td class="l">{e(name)}</td>', f'<td class="l">{e(str(entry["variant"]))}</td>']
        cells += [f"<td>{entry['questions']}</td>", f"<td>{entry['errors']}</td>"]
        cells += [f"<td>{_fmt(_cell(entry, g, k))}</td>" for _, g, k in _COLUMNS]
        cells += [
            f"<td>{_fmt_t(entry['answering']['threshold'])}</td>",
            f"<td>{_fmt(entry['latency_ms']['p50'], 0)}</td>",
            f"<td>{_fmt(entry['latency_ms']['p95'], 0)}</td>",
            f"<td>{_fmt(entry.get('index_seconds'), 1)}</td>",
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _slice_table(slices: Mapping[str, Mapping[str, Any]]) -> str:
    cols = [c for c in _COLUMNS if c[1] in ("retrieval", "answering")]
    head = "".join(f"<th>{h}</th>" for h in ["slice", "n", *(h for h, _, _ in cols)])
    body = [
        f'<tr><td class="l">{html.escape(name)}</td><td>{part["questions"]}</td>'
        + "".join(f"<td>{_fmt(_cell(part, g, k))}</td>" for _, g, k in cols)
        + "</tr>"
        for name, part in slices.items()
    ]
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _img(png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img alt="plot" src="data:image/png;base64,{data}"></p>'


def _figure(width: float, height: float) -> Any:
    # The object API with the Agg canvas: no pyplot, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None}, bbox_inches="tight")
    return buf.getvalue()


def _plot_curve(
    name: str, curve: Sequence[Mapping[str, Any]], chosen: Mapping[str, Any] | None
) -> bytes:
    fig = _figure(10, 3.6)
    left, right = fig.subplots(1, 2)
    t = [p["threshold"] for p in curve]
    for key, label in (
        ("deflection_rate", "deflection"),
        ("correct_deflection_rate", "correct deflection"),
        ("wrong_answer_rate", "wrong-answer rate"),
        ("escalation_recall", "escalation recall"),
    ):
        ys = [p[key] for p in curve]
        if any(y is not None for y in ys):
            # answered iff confidence >= t: a rate holds on (previous value, this value]
            ys_f = [float("nan") if y is None else y for y in ys]
            left.plot(t, ys_f, label=label, drawstyle="steps-pre")
    if chosen:
        left.axvline(chosen["threshold"], color="grey", linestyle="--", linewidth=1)
    left.set_xlabel("confidence threshold")
    left.set_ylim(-0.02, 1.02)
    left.set_title(f"{name}: rates by threshold")
    left.legend(fontsize=8, loc="best")
    xs = [p["deflection_rate"] for p in curve]
    ys = [float("nan") if p["wrong_answer_rate"] is None else p["wrong_answer_rate"] for p in curve]
    right.plot(xs, ys, marker=".", linewidth=1)
    if chosen:
        right.plot(
            [chosen["deflection_rate"]], [chosen["wrong_answer_rate"] or 0.0], "o", color="red"
        )
        right.axhline(chosen["target_wrong_answer_rate"], color="grey", linestyle="--", linewidth=1)
    right.set_xlabel("deflection rate")
    right.set_ylabel("wrong-answer rate")
    right.set_title("trade-off")
    return _png(fig)


def _plot_learning(name: str, curve: Mapping[str, Any]) -> bytes:
    """Correct deflection and wrong-answer rate per window of questions, feedback after each."""
    fig = _figure(7, 3.4)
    ax = fig.subplots()
    points = curve["points"]
    xs = [p["end"] for p in points]
    for key, label in (
        ("correct_deflection_rate", "correct deflection"),
        ("wrong_answer_rate", "wrong-answer rate"),
    ):
        ys = [float("nan") if p[key] is None else p[key] for p in points]
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel(f"questions asked (windows of {curve['window']}, feedback after each)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{name}: learning curve")
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def _plot_variants(name: str, rows: Sequence[Mapping[str, Any]]) -> bytes:
    keys = [
        ("recall@10", "retrieval"),
        ("mrr@10", "retrieval"),
        ("ndcg@10", "retrieval"),
        ("correct_deflection_rate", "answering"),
    ]
    fig = _figure(max(6.0, 1.6 * len(rows) + 3), 3.4)
    ax = fig.subplots()
    width = 0.8 / len(keys)
    for i, (key, group) in enumerate(keys):
        values = [_cell(r, group, key) or 0.0 for r in rows]
        ax.bar([x + i * width for x in range(len(rows))], values, width, label=key)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(rows))])
    ax.set_xticklabels([str(r["variant"]) for r in rows])
    ax.set_ylim(0, 1)
    ax.set_title(f"{name}: variants")
    ax.legend(fontsize=8, ncols=len(keys), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    return _png(fig)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, DIGITS)
    if isinstance(value, Mapping):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    return value
