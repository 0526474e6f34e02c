"""The embedding models side by side: quality from ``kb eval``, speed measured here.

Quality comes from the latest ``kb eval`` run in ``eval-runs/history.jsonl`` that holds the
model variants (``--run-eval`` starts one over the shared datasets: about 25 minutes on a cold
cache). Without one, the figures recorded in docs/experiments.md are printed, marked as such.
Speed (query encoding and passage embedding on the sample corpus's texts) is measured in this
run for each model.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT

DATASETS = (
    ROOT.parent / "shared" / "datasets" / "emanual_tv",
    ROOT.parent / "shared" / "datasets" / "localgovfaq_ja",
    ROOT / "eval" / "cases" / "sample.jsonl",
)
VARIANTS = ("dense-e5", "dense-use", 'e5+use:embedder.models=["e5","use"]')

RECORDED: list[dict[str, Any]] = [
    # `python -m bench --only models --run-eval`, kb eval run 20261205T184747Z (commit c06fe85),
    # after USE got its thread counts (ask p50 with e5+USE 55-93 ms; 340-610 ms before).
    {"dataset": "emanual_tv", "variant": "hybrid e5 (default)", "ndcg@10": 0.747,
     "mrr@10": 0.682, "recall@5": 0.857, "ask_ms": 44},
    {"dataset": "emanual_tv", "variant": "dense e5", "ndcg@10": 0.566, "mrr@10": 0.496,
     "recall@5": 0.676, "ask_ms": 38},
    {"dataset": "emanual_tv", "variant": "dense USE", "ndcg@10": 0.535, "mrr@10": 0.458,
     "recall@5": 0.633, "ask_ms": 24},
    {"dataset": "emanual_tv", "variant": "hybrid e5+USE", "ndcg@10": 0.715, "mrr@10": 0.646,
     "recall@5": 0.854, "ask_ms": 55},
    {"dataset": "localgovfaq_ja", "variant": "hybrid e5 (default)", "ndcg@10": 0.646,
     "mrr@10": 0.629, "recall@5": 0.724, "ask_ms": 78},
    {"dataset": "localgovfaq_ja", "variant": "dense e5", "ndcg@10": 0.594, "mrr@10": 0.572,
     "recall@5": 0.659, "ask_ms": 69},
    {"dataset": "localgovfaq_ja", "variant": "dense USE", "ndcg@10": 0.570, "mrr@10": 0.545,
     "recall@5": 0.627, "ask_ms": 52},
    {"dataset": "localgovfaq_ja", "variant": "hybrid e5+USE", "ndcg@10": 0.674, "mrr@10": 0.661,
     "recall@5": 0.751, "ask_ms": 93},
]  # fmt: skip
RECORDED_SOURCE = (
    "recorded figures (kb eval run 20261205T184747Z, docs/experiments.md): no kb eval run"
    " with model variants in eval-runs/history.jsonl"
)


def from_history(out: Path) -> tuple[list[dict[str, Any]], str] | None:
    """Rows of the latest eval run that compared models, or None."""
    from kb.eval.history import load_history

    for record in reversed(load_history(out)):
        names = {v.get("variant") for v in record.get("variants", [])}
        if not {"dense-e5", "dense-use"} & names:
            continue
        rows = []
        for name, entry in record.get("datasets", {}).items():
            rows.append(_row(name, "hybrid (default)", entry))
        for v in record["variants"]:
            rows.append(_row(v.get("dataset", "?"), v.get("variant", "?"), v))
        return rows, f"kb eval run {record.get('time')} (commit {str(record.get('commit'))[:8]})"
    return None


def _row(dataset: str, variant: str, entry: dict[str, Any]) -> dict[str, Any]:
    r = entry.get("retrieval") or {}
    lat = entry.get("latency_ms") or {}
    return {
        "dataset": dataset,
        "variant": variant,
        "ndcg@10": r.get("ndcg@10"),
        "mrr@10": r.get("mrr@10"),
        "recall@5": r.get("recall@5"),
        "ask_ms": lat.get("p50"),
    }


def run_eval(log: Any) -> None:
    """``kb eval`` over the shared datasets with the model variants (long)."""
    cmd = [str(ROOT / ".venv/bin/kb"), "eval", *map(str, DATASETS), "--no-plots"]
    for v in VARIANTS:
        cmd += ["--variants", v]
    log("models: " + " ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True)


def speed(texts: list[str], questions: list[str]) -> list[dict[str, Any]]:
    """Load time, query encoding (mean ms) and passage embedding (texts/s) of e5 and USE."""
    from kb.retrieval.embedders import build_embedders
    from kb.retrieval.settings import EmbedderSettings

    out = []
    for name in ("e5", "use"):
        embedder = build_embedders(EmbedderSettings(models=[name], title_vectors=False))[0]
        t0 = time.perf_counter()
        embedder.warm_up()
        load = time.perf_counter() - t0
        embedder.embed_query("warm up")
        q_ms = []
        for q in questions:
            t0 = time.perf_counter()
            embedder.embed_query(q)
            q_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        for start in range(0, len(texts), 16):
            embedder.embed_documents(texts[start : start + 16])
        docs_s = len(texts) / (time.perf_counter() - t0)
        out.append(
            {
                "model": name,
                "dim": embedder.dim,
                "load_s": round(load, 2),
                "query_ms": round(statistics.mean(q_ms), 1),
                "passages_per_s": round(docs_s, 2),
            }
        )
    return out


def run(texts: list[str], questions: list[str], log: Any, *, evaluate: bool) -> dict[str, Any]:
    """Quality rows (history or recorded) and measured speed."""
    if evaluate:
        run_eval(log)
    found = from_history(ROOT / "eval-runs")
    rows, source = found if found else (RECORDED, RECORDED_SOURCE)
    log(f"models: quality from {source}; measuring speed on {len(texts)} passages ...")
    return {"quality": rows, "quality_source": source, "speed": speed(texts, questions)}
