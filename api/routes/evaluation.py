"""Evaluation runs, read-only (issue 6): ``kb eval``'s history and each run's HTML report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from kb.api.deps import EvaluatorDep
from kb.api.responses import EvalRunOut
from kb.retrieval.errors import NotFoundError

router = APIRouter(prefix="/api/eval", tags=["evaluation"])

_RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$")
_HEADLINE = {
    "retrieval": ("recall@10", "mrr@10", "ndcg@10"),
    "answering": ("deflection_rate", "wrong_answer_rate", "escalation_recall", "auroc"),
}


def _eval_dir(request: Request) -> Path:
    path: Path = request.app.state.web.eval_dir
    return path


def _headline(dataset: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for group, keys in _HEADLINE.items():
        values = dataset.get(group) or {}
        for key in keys:
            value = values.get(key)
            out[key] = float(value) if isinstance(value, int | float) else None
    faith = dataset.get("faithfulness")
    out["faithfulness"] = float(faith) if isinstance(faith, int | float) else None
    p95 = (dataset.get("latency_ms") or {}).get("p95")
    out["latency_p95_ms"] = float(p95) if isinstance(p95, int | float) else None
    return out


def _variant_names(variants: object) -> list[str]:
    """The variant names of a history line (``kb eval`` writes a list of entries)."""
    if not isinstance(variants, list):
        return []
    return sorted({str(v["variant"]) for v in variants if isinstance(v, dict) and "variant" in v})


@router.get("/runs", response_model=list[EvalRunOut], response_model_exclude_unset=True)
def list_runs(request: Request, _evaluator: EvaluatorDep) -> list[dict[str, Any]]:
    """Evaluation runs, newest first, with each dataset's headline metrics and report link."""
    history = _eval_dir(request) / "history.jsonl"
    if not history.is_file():
        return []
    runs: list[dict[str, Any]] = []
    for line in history.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed run: skip it, keep the rest
        if not isinstance(entry, dict):
            continue
        run_id = Path(str(entry.get("run_dir") or "")).name
        has_report = bool(_RUN_ID.match(run_id)) and _report_path(request, run_id).is_file()
        datasets = entry.get("datasets") or {}
        runs.append(
            {
                "id": run_id,
                "time": entry.get("time"),
                "commit": entry.get("commit"),
                "variants": _variant_names(entry.get("variants")),
                "datasets": [
                    {
                        "name": name,
                        "variant": d.get("variant"),
                        "questions": d.get("questions"),
                        "metrics": _headline(d),
                    }
                    for name, d in datasets.items()
                    if isinstance(d, dict)
                ],
                "report_url": f"/api/eval/runs/{run_id}/report" if has_report else None,
            }
        )
    runs.reverse()
    return runs


def _report_path(request: Request, run_id: str) -> Path:
    return _eval_dir(request) / "runs" / run_id / "report.html"


@router.get("/runs/{run_id}/report", response_class=FileResponse)
def report(run_id: str, request: Request, _evaluator: EvaluatorDep) -> FileResponse:
    """One run's HTML report."""
    path = _report_path(request, run_id)
    if not _RUN_ID.match(run_id) or not path.is_file():
        raise NotFoundError(f"no evaluation report {run_id}")
    return FileResponse(path, media_type="text/html; charset=utf-8")
