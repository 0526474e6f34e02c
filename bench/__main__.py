"""``python -m bench`` (``make bench``): the performance figures of issue 9, in one run.

    python -m bench                      # routine: ingest, re-sync, query, store 100k int8
    python -m bench --full               # every section, store at 10k, 100k and 1M (an hour+)
    python -m bench --only ingest,query  # some sections
    python -m bench --only store --sizes 10k,100k,1M --quant none,int8
    python -m bench --only models --run-eval   # also run kb eval over the shared datasets
    python -m bench --only isolation     # answers while 160 documents are ingested (issue 20)

The routine run takes under 10 minutes on an idle 2-core machine: the 100k store is built with
int8 quantisation, whose ``optimize()`` is about 5x shorter (docs/benchmarks.md).

Prints progress on stderr, then the table of figures (ratios against their targets) on stdout,
and writes everything to ``bench-results/<timestamp>.json``. Timings depend on the machine and
its load: run it on an idle machine; the load average is recorded with the results.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure, machine, parse_size, size_label, table

SECTIONS = ("ingest", "resync", "query", "store", "models", "levers", "isolation")
ROUTINE = ("ingest", "resync", "query", "store")
"""The sections of a routine run (no ``--full``)."""
ASK_RATE_PER_HOUR = 2.0
"""Questions per employee in a busy hour, used to turn questions/s into users."""


def log(message: str) -> None:
    """Progress on stderr, with the time."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def figures(results: dict[str, Any]) -> list[Figure]:
    """The final table."""
    out: list[Figure] = []
    ing = results.get("ingest")
    if ing:
        out.append(
            Figure(
                "kb ingest process / pure embedding",
                ing["ingest_ratio"],
                target="<= 1.2",
                note=f"{ing['ingest_wall_s']} s wall (what a user waits for) /"
                f" {ing['embed_floor_s']} s, {ing['chunks']} chunks,"
                f" {ing['texts_embedded_floor']} texts embedded",
            )
        )
        if "ingest_ratio_run" in ing:
            out.append(
                Figure(
                    "  ingest run only / pure embedding",
                    ing["ingest_ratio_run"],
                    note=f"{ing['ingest_run_s']} s, first file to last",
                )
            )
        for stage, s in ing["stages_s"].items():
            out.append(Figure(f"  ingest stage: {stage}", s, "s"))
        if "resync" in results["sections"]:
            out.append(
                Figure(
                    "re-sync (unchanged) / first ingest",
                    ing["resync_ratio"],
                    target="<= 0.05",
                    note=f"{ing['resync_wall_s']} s / {ing['ingest_wall_s']} s wall,"
                    f" {ing['resync_unchanged']} files unchanged",
                )
            )
    q = results.get("query")
    if q:
        out.append(
            Figure(
                "/api/ask mean / floor (embed + search)",
                q["query_ratio"],
                target="<= 1.5",
                note=f"{q['http_mean_ms']} ms / {q['floor_mean_ms']} ms over {q['questions']}"
                f" questions; p50 ratio {q['query_ratio_p50']}",
            )
        )
        out.append(Figure("  /api/ask p50", q["http_p50_ms"], "ms"))
        out.append(Figure("  /api/ask p95", q["http_p95_ms"], "ms"))
        for stage, ms in q["stages_mean_ms"].items():
            out.append(Figure(f"  ask stage (mean): {stage}", ms, "ms"))
        out.append(Figure("  first question after start", q["first_question_ms"], "ms"))
        for clients, t in q["throughput"].items():
            users = t["per_s"] * 3600 / ASK_RATE_PER_HOUR
            out.append(
                Figure(
                    f"  sustained, {clients} concurrent client(s)",
                    t["per_s"],
                    "q/s",
                    note=f"p50 {t['p50_ms']} ms, p95 {t['p95_ms']} ms; ~{users:,.0f} users at"
                    f" {ASK_RATE_PER_HOUR:g} questions/user in the busy hour",
                )
            )
    st = results.get("store")
    if st:
        for key, r in st.items():
            n, quant = key.split("/")
            label = f"store {size_label(int(n))} {quant}"
            out.append(
                Figure(
                    f"{label}: hybrid+ACL p50",
                    r["p50_ms"],
                    "ms",
                    note=f"p95 {r['p95_ms']} ms; insert {r['insert_pts_per_s']:,.0f} pts/s,"
                    f" optimize {r['optimize_s']:.0f} s",
                )
            )
            out.append(
                Figure(
                    f"{label}: RSS of the open shard",
                    round(r["rss_bytes"] / 2**20, 1),
                    "MiB",
                    note=f"disk {r['disk_bytes'] / 2**20:,.0f} MiB, opened in {r['open_s']} s",
                )
            )
        slope = results.get("store_rss_slope_mib_per_100k")
        if slope is not None:
            out.append(Figure("store: RSS per 100k chunks (slope across sizes)", slope, "MiB"))
    m = results.get("models")
    if m:
        for s in m["speed"]:
            out.append(
                Figure(
                    f"model {s['model']}: query encoding",
                    s["query_ms"],
                    "ms",
                    note=f"{s['passages_per_s']} passages/s, load {s['load_s']} s, {s['dim']}-d",
                )
            )
    iso = results.get("isolation")
    if iso:
        idle, busy = iso["idle"], iso["under_ingestion"]
        out.append(Figure("/api/ask idle p50", idle["p50_ms"], "ms", note=f"{idle}"))
        out.append(
            Figure(
                "/api/ask p95 while ingesting",
                busy["p95_ms"],
                "ms",
                target="<= 2000",
                note=f"{busy['n']} questions during the run; p50 {busy['p50_ms']} ms",
            )
        )
        out.append(Figure("/api/ask max while ingesting", busy["max_ms"], "ms", target="<= 4000"))
        out.append(
            Figure(
                "  ingestion run (in the worker)",
                iso["ingest_s"],
                "s",
                note=f"{iso['added']} of {iso['documents']} documents added, {iso['run_status']}",
            )
        )
        hostile = iso["hostile"]
        out.append(
            Figure(
                "hostile DOCX (200k paragraphs): time to result",
                hostile["seconds"],
                "s",
                target="<= 60",
                note=f"{hostile['outcome']}: {hostile['error']}",
            )
        )
        out.append(
            Figure("ingestion worker peak RSS", iso["worker_peak_rss_mib"], "MiB", target="<= 1024")
        )
        alone = iso["hostile_alone"]
        out.append(
            Figure(
                "  hostile DOCX alone, started worker",
                alone["seconds"],
                "s",
                target="<= 60",
                note=f"{alone['bytes']:,} bytes; worker start {alone['worker_start_s']} s;"
                f" peak RSS {alone['worker_peak_rss_mib']} MiB",
            )
        )
    lv = results.get("levers")
    if lv:
        for group, values in lv.items():
            for name, value in values.items():
                if group.endswith("_per_s"):
                    label, unit = group.removesuffix("_per_s"), "/s"
                else:
                    label, _, unit = group.rpartition("_")
                out.append(Figure(f"lever {label}: {name}", value, unit))
    return out


def quality_table(models: dict[str, Any]) -> str:
    """The models' quality rows as text."""
    cols = ("dataset", "variant", "ndcg@10", "mrr@10", "recall@5", "ask_ms")
    rows = [cols] + [
        tuple("-" if r.get(c) is None else str(r.get(c)) for c in cols) for r in models["quality"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return f"Models (quality from {models['quality_source']}):\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections; print the table; write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="every section, store up to 1M")
    parser.add_argument("--only", default=None, help="comma-separated sections")
    parser.add_argument("--sizes", default=None, help="store sizes, e.g. 10k,100k,1M")
    parser.add_argument("--quant", default=None, help="store quantisations: none,int8")
    parser.add_argument("--quick", action="store_true", help="the routine run (the default)")
    parser.add_argument("--run-eval", action="store_true", help="run kb eval (models, long)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--workdir", type=Path, default=None, help="keep data here (else temp)")
    args = parser.parse_args(argv)
    if args.full and args.quick:
        parser.error("--full and --quick exclude each other")
    only = args.only or ",".join(SECTIONS if args.full else ROUTINE)
    sections = [s.strip() for s in only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    sizes_arg = args.sizes or ("10k,100k,1M" if args.full else "100k")
    sizes = [parse_size(s) for s in sizes_arg.split(",")]
    quant_arg = args.quant or ("none" if args.full else "int8")
    quants = [q.strip() for q in quant_arg.split(",") if q.strip()]
    results_mode = "full" if args.full else "routine"

    started = datetime.now(UTC).replace(microsecond=0)
    results: dict[str, Any] = {"started": started.isoformat(), "machine": machine()}
    results["sections"] = sections
    results["mode"] = results_mode
    log(f"machine: {results['machine']}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"

    def save() -> None:  # after every section, so a long run keeps what it measured
        path.write_text(json.dumps(results, indent=2, ensure_ascii=False))

    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data_dir: Path | None = None
        if {"ingest", "resync"} & set(sections):
            from bench import ingest

            results["ingest"] = ingest.run(work, log)
            save()
            data_dir = Path(results["ingest"]["data_dir"])
        if {"query", "models", "levers"} & set(sections) and data_dir is None:
            from bench.ingest import kb_ingest

            data_dir = work / "ingest-data"
            log("ingesting the sample corpus for the query, models and levers sections ...")
            kb_ingest(data_dir)
        from bench.query import load_cases

        questions = [c["text"] for c in load_cases()]
        if "query" in sections:
            from bench import query

            results["query"] = query.run(
                work, log, data_dir=data_dir, load_seconds=30 if args.full else 10
            )
            save()
        texts: list[str] = []
        if {"models", "levers"} & set(sections):
            from bench.ingest import corpus_texts

            assert data_dir is not None
            texts = corpus_texts(data_dir)[:48]
        if "models" in sections:
            from bench import models

            results["models"] = models.run(texts, questions[:30], log, evaluate=args.run_eval)
            save()
        if "levers" in sections:
            from bench import levers

            assert data_dir is not None
            results["levers"] = levers.run(data_dir, texts, questions[:30], log)
            save()
        if "isolation" in sections:
            from bench import isolation

            results["isolation"] = isolation.run(work, log)
            save()
        if "store" in sections:
            from bench import store

            results["store"] = store.run(work, sizes, quants, log)
            none = sorted(
                (r["points"], r["rss_bytes"]) for r in results["store"].values()
                if r["quantization"] == quants[0]
            )  # fmt: skip
            if len(none) >= 2:
                (n0, r0), (n1, r1) = none[0], none[-1]
                results["store_rss_slope_mib_per_100k"] = round(
                    (r1 - r0) / 2**20 / ((n1 - n0) / 100_000), 1
                )
    results["machine"]["load_avg_end"] = machine()["load_avg"]
    results["figures"] = [
        {"name": f.name, "value": f.value, "unit": f.unit, "target": f.target, "note": f.note,
         "verdict": f.verdict()}
        for f in figures(results)
    ]  # fmt: skip
    save()
    mach = results["machine"]
    sys.stdout.write(
        f"\nMachine: {mach['cpu']}, {mach['cores']} cores, {mach['memory_gib']} GiB; load"
        f" {mach['load_avg']} at start, {mach['load_avg_end']} at end; commit {mach['commit']}\n\n"
    )
    sys.stdout.write(table(figures(results)) + "\n")
    if "models" in results:
        sys.stdout.write("\n" + quality_table(results["models"]) + "\n")
    sys.stdout.write(f"\nWritten: {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
