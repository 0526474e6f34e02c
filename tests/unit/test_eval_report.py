"""report.json shape, the self-contained HTML, the text summary and the run history."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kb.eval.datasets import EvalQuestion
from kb.eval.history import (
    append_history,
    compare,
    format_comparison,
    git_commit,
    history_record,
    load_history,
    new_run_dir,
    previous_run,
)
from kb.eval.metrics import Outcome, summarize
from kb.eval.report import (
    build_report,
    check_report_shape,
    dataset_entry,
    render_html,
    render_summary,
    write_report,
)

RUN_KEYS = {"started", "commit", "settings"}
RETRIEVAL = {"recall@1", "recall@5", "recall@10", "hit@1", "hit@5", "hit@10", "mrr@10", "ndcg@10"}
ANSWERING = {
    "deflection_rate",
    "correct_deflection_rate",
    "wrong_answer_rate",
    "escalation_recall",
    "auroc",
    "threshold",
}
ENTRY = {
    "variant",
    "retrieval",
    "answering",
    "faithfulness",
    "latency_ms",
    "index_seconds",
    "questions",
    "errors",
}


def _outcomes() -> list[Outcome]:
    a = EvalQuestion("a", "q a", True, ("d1",), subset="normal")
    b = EvalQuestion("b", "q b", True, ("d2",), subset="normal")
    u = EvalQuestion("u", "q u", False, subset="oos")
    return [
        Outcome(a, ("d1", "d2"), ("d1",), 0.9, "answered", 10.0, 1.0),
        Outcome(b, ("d1", "d2"), ("d1",), 0.6, "answered", 20.0, 0.5),
        Outcome(u, ("d3",), (), 0.2, "escalated", 30.0),
    ]


def _report(variants: bool = True) -> dict[str, Any]:
    summary = summarize(_outcomes(), threshold=0.5, target=0.1)
    default = dataset_entry("default", summary, index_seconds=1.25, extra={"index_reused": False})
    rows = [{"dataset": "tiny", **dataset_entry("bm25", summary, index_seconds=0.5)}]
    return build_report(
        started="2025-01-02T03:04:05Z",
        commit="0123456789abcdef",
        settings={"kb": {"retrieval": {"confidence_threshold": 0.5}}},
        datasets={"tiny": default},
        variants=rows if variants else [],
    )


# --- report.json ------------------------------------------------------------------------------


def test_report_has_exactly_the_required_shape() -> None:
    report = _report()
    assert set(report) == {"run", "datasets", "variants"}
    assert set(report["run"]) == RUN_KEYS
    entry = report["datasets"]["tiny"]
    assert ENTRY <= set(entry)
    assert set(entry["retrieval"]) == RETRIEVAL
    assert set(entry["answering"]) == ANSWERING
    assert set(entry["latency_ms"]) == {"p50", "p95"}
    assert entry["variant"] == "default"
    (row,) = report["variants"]
    assert row["dataset"] == "tiny" and row["variant"] == "bm25" and ENTRY <= set(row)
    assert set(row["retrieval"]) == RETRIEVAL
    # extras are allowed next to the required keys
    assert {"curve", "chosen_threshold", "subsets", "index_reused"} <= set(entry)


def test_report_numbers_by_hand() -> None:
    entry = _report()["datasets"]["tiny"]
    # a: ranked d1 d2, gold d1 -> R@1 1; b: gold d2 at rank 2 -> R@1 0, R@5 1
    assert entry["retrieval"]["recall@1"] == 0.5
    assert entry["retrieval"]["recall@5"] == 1.0
    assert entry["retrieval"]["mrr@10"] == 0.75  # (1 + 1/2) / 2
    # at 0.5: a and b answered (2 of 3), both cite d1: a right, b wrong
    assert entry["answering"]["deflection_rate"] == pytest.approx(0.666667)  # rounded to 6
    assert entry["answering"]["correct_deflection_rate"] == 0.5  # a of a, b
    assert entry["answering"]["wrong_answer_rate"] == 0.5  # b of a, b
    assert entry["answering"]["escalation_recall"] == 1.0
    assert entry["answering"]["auroc"] == 1.0  # .9 and .6 both above .2
    assert entry["answering"]["threshold"] == 0.5
    assert entry["faithfulness"] == 0.75  # (1.0 + 0.5) / 2
    assert entry["latency_ms"] == {"p50": 20.0, "p95": 29.0}  # 20 + 10 * 0.9
    assert entry["index_seconds"] == 1.25
    assert entry["questions"] == 3 and entry["errors"] == 0
    assert entry["chosen_threshold"]["threshold"] == 0.9  # 0.6 would answer b wrongly


def test_check_report_shape_names_missing_key() -> None:
    report = _report()
    del report["datasets"]["tiny"]["answering"]["auroc"]
    with pytest.raises(ValueError, match="auroc"):
        check_report_shape(report)
    report = _report()
    del report["variants"][0]["dataset"]
    with pytest.raises(ValueError, match="dataset"):
        check_report_shape(report)
    with pytest.raises(ValueError, match="run"):
        check_report_shape({"datasets": {}, "variants": []})


def test_report_json_round_trips(tmp_path: Path) -> None:
    report = _report()
    paths = write_report(report, tmp_path / "r", plots=False)
    assert [p.name for p in paths] == ["report.json", "report.html"]
    assert json.loads(paths[0].read_text(encoding="utf-8")) == report


# --- HTML and summary -------------------------------------------------------------------------


def test_html_is_self_contained_with_embedded_plots(tmp_path: Path) -> None:
    report = _report()
    write_report(report, tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page and "@import" not in page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert len(srcs) == 2  # the threshold curves and the variant bars
    assert "tiny" in page and "bm25" in page


def test_html_escapes_text() -> None:
    report = _report(variants=False)
    report["datasets"] = {"<b>x</b>": report["datasets"]["tiny"]}
    page = render_html(report, plots=False)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_summary_fits_one_screen() -> None:
    text = render_summary(_report(), comparison="Change since ...")
    lines = text.splitlines()
    assert len(lines) <= 30 and max(len(line) for line in lines) <= 160
    assert "tiny" in text and "default" in text and "bm25" in text
    assert "0.500" in text  # recall@1
    assert "best for wrong <= 0.10: 0.9 (deflection 0.333" in text  # chosen threshold
    assert lines[-1] == "Change since ..."


# --- history ----------------------------------------------------------------------------------


def _with_metric(report: dict[str, Any], recall: float, wrong: float) -> dict[str, Any]:
    report = json.loads(json.dumps(report))
    report["datasets"]["tiny"]["retrieval"]["recall@10"] = recall
    report["datasets"]["tiny"]["answering"]["wrong_answer_rate"] = wrong
    return report


def test_history_appends_and_finds_previous_run_of_same_datasets(tmp_path: Path) -> None:
    first = _with_metric(_report(), 0.8, 0.2)
    other = json.loads(json.dumps(first))
    other["datasets"] = {"something_else": first["datasets"]["tiny"]}
    append_history(tmp_path, first, tmp_path / "runs" / "1")
    append_history(tmp_path, other)
    history = load_history(tmp_path)
    assert len(history) == 2
    assert history[0]["commit"] == "0123456789abcdef"
    assert history[0]["run_dir"] == str(tmp_path / "runs" / "1")
    assert "curve" not in history[0]["datasets"]["tiny"]  # bulky parts stay in the run folder
    assert history[0]["settings"] == first["run"]["settings"]
    prev = previous_run(history, ["tiny"])
    assert prev is not None and prev["datasets"]["tiny"]["retrieval"]["recall@10"] == 0.8
    assert previous_run(history, ["tiny", "something_else"]) is None


def test_compare_headline_deltas(tmp_path: Path) -> None:
    before = _with_metric(_report(), 0.8, 0.2)
    now = _with_metric(_report(), 0.9, 0.3)
    append_history(tmp_path, before)
    prev = previous_run(load_history(tmp_path), {"tiny"})
    deltas = {d.metric: d for d in compare(now, prev)}
    assert deltas["retrieval.recall@10"].change == pytest.approx(0.1)  # 0.9 - 0.8
    assert deltas["answering.wrong_answer_rate"].change == pytest.approx(0.1)  # 0.3 - 0.2
    assert deltas["faithfulness"].change == 0.0
    text = format_comparison(compare(now, prev), prev)
    header, row = text.splitlines()[1:]
    cells = dict(zip(header.split()[1:], row.split()[1:], strict=True))
    assert row.split()[0] == "tiny"
    assert cells["R@10"] == "+0.100"  # 0.9 - 0.8, better
    assert cells["wrong"] == "+0.100!"  # 0.3 - 0.2: a higher wrong-answer rate is worse
    assert cells["faith"] == "+0.000" and cells["p95ms"] == "+0.0"


def test_compare_without_previous() -> None:
    deltas = compare(_report(), None)
    assert all(d.previous is None and d.change is None for d in deltas)
    assert "No previous run" in format_comparison(deltas, None)


def test_history_skips_a_truncated_line(tmp_path: Path) -> None:
    append_history(tmp_path, _report())
    with (tmp_path / "history.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"time": "trunc')
    assert len(load_history(tmp_path)) == 1
    assert load_history(tmp_path / "nothing") == []


def test_history_record_fields() -> None:
    record = history_record(_report())
    assert set(record) == {"time", "commit", "settings", "run_dir", "datasets", "variants"}
    assert record["time"] == "2025-01-02T03:04:05Z"


def test_new_run_dir_never_reuses_a_folder(tmp_path: Path) -> None:
    t = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    first, second = new_run_dir(tmp_path, t), new_run_dir(tmp_path, t)
    assert first.name == "20250102T030405Z" and second.name == "20250102T030405Z-2"
    assert first.parent == tmp_path / "runs" and second.is_dir()


def test_git_commit_outside_a_repository(tmp_path: Path) -> None:
    assert git_commit(tmp_path) is None
