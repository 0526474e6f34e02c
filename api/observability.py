"""Request ids, the access log, HTTP metrics, ``GET /metrics`` and optional tracing (issue 24).

:class:`RequestContextMiddleware` runs outermost: it takes the request's id from
``X-Request-ID`` (or makes one), puts it on every log line of the request
(:data:`retrieval.logs.REQUEST_ID`) and on the response, times the request by route template
for Prometheus, and writes one ``kb.access`` line. ``GET /metrics`` serves
:mod:`retrieval.telemetry`. OpenTelemetry tracing is on when its packages are installed
(``pip install kb-assistant[otel]``) and ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from sqlalchemy import func, select

from kb.retrieval.logs import REQUEST_ID
from kb.retrieval.settings import Settings
from kb.retrieval.telemetry import HTTP_DURATION, DatabaseCollector, exposition

log = logging.getLogger(__name__)
access_log = logging.getLogger("kb.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_VALID_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
"""An incoming id is kept when it is short and plain (it goes into logs and headers)."""


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The incoming ``X-Request-ID`` when it is plain enough to log, else a new one."""
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            if _VALID_ID.match(text):
                return text
            break
    return uuid.uuid4().hex


def route_of(scope: Scope) -> str:
    """The route template that handled the request (``/api/documents/{document_id}``), so
    that metrics have one series per route, not per URL."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if scope.get("path", "").startswith("/static/"):
        return "/static"
    return "unmatched"


class RequestContextMiddleware:
    """Request id, access log line and duration histogram for every HTTP request."""

    def __init__(self, app: ASGIApp, *, access: bool = True) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(list(scope.get("headers") or []))
        token = REQUEST_ID.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *[(k, v) for k, v in message.get("headers") or [] if k != b"x-request-id"],
                    header,
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Logged again by the server outside this context: the filter finds the id here.
            exc.kb_request_id = request_id  # type: ignore[attr-defined]
            raise
        finally:
            seconds = time.perf_counter() - start
            route = route_of(scope)
            HTTP_DURATION.labels(scope["method"], route, str(status)).observe(seconds)
            if self.access:
                client = scope.get("client")
                access_log.info(
                    "%s %s %d %.1fms",
                    scope["method"],
                    scope.get("path", ""),
                    status,
                    seconds * 1000,
                    extra={
                        "method": scope["method"],
                        "path": scope.get("path", ""),
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 1),
                        "client": client[0] if client else None,
                    },
                )
            REQUEST_ID.reset(token)


def database_counts(request: Request) -> Callable[[], dict[str, dict[str, int]]]:
    """The live figures of :class:`~retrieval.telemetry.DatabaseCollector`, from this app's
    database (none before the lifespan opened it)."""

    def counts() -> dict[str, dict[str, int]]:
        from kb.db.models import IngestRun, Notification, QueueGroup

        db = getattr(request.app.state, "db", None)
        if db is None:
            return {}
        out: dict[str, dict[str, int]] = {}
        with db.session() as s:
            for name, column in (
                ("kb_support_queue_groups", QueueGroup.state),
                ("kb_ingest_runs", IngestRun.status),
                ("kb_notifications", Notification.status),
            ):
                rows = s.execute(select(column, func.count()).group_by(column)).all()
                out[name] = {str(value): int(n) for value, n in rows}
        # The queue to watch: runs waiting or running (finished ones only grow).
        runs = out.get("kb_ingest_runs", {})
        out["kb_ingest_runs"] = {k: runs.get(k, 0) for k in ("queued", "running")}
        return out

    return counts


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus metrics (text format)."""
    settings: Settings = request.app.state.settings
    token = settings.metrics.token
    if token is not None:
        expected = f"Bearer {token.get_secret_value()}"
        if request.headers.get("authorization", "") != expected:
            from kb.api.errors import error_response

            return error_response("UNAUTHENTICATED", "metrics need the KB_METRICS__TOKEN bearer")
    body, content_type = exposition(DatabaseCollector(database_counts(request)))
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


def install(app: FastAPI, settings: Settings) -> None:
    """Add the middleware, ``/metrics`` (unless ``KB_METRICS__ENABLED=false``) and tracing."""
    if settings.metrics.enabled:
        app.include_router(router)
    _tracing(app)
    # Around Starlette's whole stack, its error middleware included: the "unhandled error"
    # line and the 500 response carry the request id too.
    build = app.build_middleware_stack

    def build_with_context() -> ASGIApp:
        return RequestContextMiddleware(build(), access=settings.log.access)

    app.build_middleware_stack = build_with_context  # type: ignore[method-assign]


def _tracing(app: FastAPI) -> None:
    """OpenTelemetry spans for each request, exported over OTLP, when configured."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed "
            "(pip install kb-assistant[otel]): no tracing"
        )
        return
    name = os.environ.get("OTEL_SERVICE_NAME", "kb-assistant")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    log.info("OpenTelemetry tracing to %s", os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"])
