"""Prometheus metrics of the service (issue 24): what ``GET /metrics`` exposes.

Counters and histograms are recorded where the work happens (``KnowledgeBase.search``, the
ask route, ingestion runs, the API middleware). Live figures (the support queue, ingestion runs
waiting, notifications to deliver) are read from the database at each scrape
(:class:`DatabaseCollector`), so every worker reports the same.

With several uvicorn workers, ``kb serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder
before they start: each worker writes its samples there and a scrape of any worker sums them
(prometheus-client's multiprocess mode). What to watch: docs/operations.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_DURATION = Histogram(
    "kb_http_request_duration_seconds",
    "HTTP requests by route template, method and status code.",
    ["method", "route", "status"],
    buckets=LATENCY,
)
ASKS = Counter(
    "kb_ask_total",
    "Questions by outcome (answered, escalated) and the question's language.",
    ["outcome", "lang"],
)
RETRIEVAL = Histogram(
    "kb_retrieval_seconds",
    "One hybrid search: query embedding, BM25 terms, the vector store's query, the ranker.",
    buckets=LATENCY,
)
VECTOR_SEARCH = Histogram(
    "kb_vector_search_seconds",
    "The vector store's fused query alone (Qdrant Edge or server).",
    buckets=LATENCY,
)
EMBEDDING = Histogram(
    "kb_embedding_seconds",
    "Embedding a question (all dense models).",
    ["kind"],
    buckets=LATENCY,
)
INGEST_RUNS = Counter("kb_ingest_runs_total", "Ingestion runs that ended, by status.", ["status"])
INGEST_FILES = Counter(
    "kb_ingest_files_total",
    "Files of ingestion runs by outcome (added, updated, unchanged, deleted, failed).",
    ["outcome"],
)
INGEST_CHUNKS = Counter(
    "kb_ingest_chunks_total", "Chunks written by ingestion runs (added and updated documents)."
)
INGEST_EMBEDDED = Counter(
    "kb_ingest_embedded_chunks_total",
    "Chunks ingestion runs embedded (the rest came from the embedding cache).",
)
INGEST_STAGE = Counter(
    "kb_ingest_stage_seconds_total",
    "Time ingestion runs spent per stage (parse, chunk, embed, sparse, upsert, optimize).",
    ["stage"],
)
ERRORS = Counter(
    "kb_errors_total",
    "Error responses by error code (RATE_LIMITED, LLM_PROVIDER_ERROR, INTERNAL_ERROR ...).",
    ["code"],
)


def record_ask(outcome: str, lang: str) -> None:
    """Count one answered or escalated question."""
    ASKS.labels(outcome=outcome, lang=lang).inc()


def record_search(timings_ms: Mapping[str, float]) -> None:
    """Record one :meth:`KnowledgeBase.search` from its per-stage timings."""
    total = sum(timings_ms.get(k, 0.0) for k in ("embed_ms", "sparse_ms", "search_ms", "rerank_ms"))
    RETRIEVAL.observe(total / 1000)
    VECTOR_SEARCH.observe(timings_ms.get("search_ms", 0.0) / 1000)
    EMBEDDING.labels(kind="query").observe(timings_ms.get("embed_ms", 0.0) / 1000)


def record_ingest_run(status: str, report: Mapping[str, Any]) -> None:
    """Record an ingestion run that ended (``report``: ``IngestReport.to_dict()``)."""
    INGEST_RUNS.labels(status=status).inc()
    for outcome in ("added", "updated", "unchanged", "deleted", "failed"):
        n = int(report.get(outcome) or 0)
        if n:
            INGEST_FILES.labels(outcome=outcome).inc(n)
    files = report.get("files") or []
    written = sum(
        int(f.get("chunks") or 0) for f in files if f.get("outcome") in ("added", "updated")
    )
    INGEST_CHUNKS.inc(written)
    INGEST_EMBEDDED.inc(int(report.get("embedded_chunks") or 0))
    for stage, seconds in (report.get("stages") or {}).items():
        INGEST_STAGE.labels(stage=stage).inc(float(seconds))


def record_error(code: str) -> None:
    """Count one error response."""
    ERRORS.labels(code=code).inc()


class DatabaseCollector(Collector):
    """Live gauges read from the database at each scrape: open support-queue groups, ingestion
    runs queued or running, notifications waiting to be delivered."""

    def __init__(self, counts: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        """One gauge family per figure; nothing when the database does not answer."""
        try:
            counts = self._counts()
        except Exception:  # noqa: BLE001 - a scrape must not fail with the database
            return
        docs = {
            "kb_support_queue_groups": "Support-queue groups by state (open: waiting for staff).",
            "kb_ingest_runs": "Ingestion runs by status (queued and running: the queue).",
            "kb_notifications": "Escalation notifications by delivery status.",
        }
        for name, by_label in counts.items():
            label = "state" if name == "kb_support_queue_groups" else "status"
            family = GaugeMetricFamily(name, docs.get(name, name), labels=[label])
            for value, n in sorted(by_label.items()):
                family.add_metric([value], n)
            yield family


def multiprocess_dir() -> str | None:
    """The folder of prometheus-client's multiprocess mode, when it is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(extra: Collector | None = None) -> tuple[bytes, str]:
    """The current metrics in Prometheus' text format, and its content type."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        for collector in _default_collectors():
            registry.register(collector)
    if extra is not None:
        registry.register(extra)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _default_collectors() -> list[Collector]:
    # The process' default registry (our metrics, process and platform figures).
    return [_Registry(REGISTRY)]


class _Registry(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()
