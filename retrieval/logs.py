"""One logging configuration for the service, the CLI and the ingestion worker (issue 24).

``KB_LOG__FORMAT=text|json`` and ``KB_LOG__LEVEL``. Loggers are named by module
(``logging.getLogger(__name__)``). With ``json`` every line the process writes through logging
is one JSON object: uvicorn's own lines, the access log, Python warnings
(``logging.captureWarnings``) and uncaught exceptions in threads included. Inside a request each
line carries the request's id (:data:`REQUEST_ID`, set by the API's middleware from
``X-Request-ID`` or generated).
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
import threading
import time
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from kb.retrieval.ops_settings import LogSettings

REQUEST_ID: ContextVar[str | None] = ContextVar("kb_request_id", default=None)
"""The id of the request being handled (``None`` outside requests)."""

_RECORD_FIELDS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (``-`` outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``request_id``; never drops a record."""
        if not hasattr(record, "request_id"):
            exc = record.exc_info[1] if record.exc_info else None
            record.request_id = REQUEST_ID.get() or getattr(exc, "kb_request_id", None) or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, request id, the record's
    extra fields, and the exception's traceback as one string."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id and request_id != "-":
            data["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key != "color_message":
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def logging_config(settings: LogSettings) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` dictionary (also given to uvicorn as
    ``log_config``, so each of its worker processes applies it)."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if settings.format == "json"
        else {"format": TEXT_FORMAT}
    )
    # uvicorn's loggers keep no handlers of their own: their lines go through the root's.
    quiet = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request_id"],
            }
        },
        "root": {"level": settings.level, "handlers": ["default"]},
        "loggers": {
            "uvicorn": {**quiet, "level": settings.level},
            "uvicorn.error": {**quiet, "level": settings.level},
            # The app writes its own access log (kb.access) with the request id and route.
            "uvicorn.access": {"handlers": [], "propagate": False},
            # Chatty at INFO: one line per HTTP call to Qdrant, the LLM, webhooks.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


def configure_logging(settings: LogSettings) -> None:
    """Apply :func:`logging_config`; route warnings and uncaught exceptions through it."""
    logging.config.dictConfig(logging_config(settings))
    logging.captureWarnings(True)
    if settings.format == "json":
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_thread_exception


def settings_from_env() -> LogSettings:
    """The log settings of a helper process (the ingestion worker) from its environment."""
    return LogSettings(
        format=os.environ.get("KB_LOG__FORMAT", "text"),  # type: ignore[arg-type]
        level=os.environ.get("KB_LOG__LEVEL", "INFO"),
    )


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("kb.uncaught").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "?"
    logging.getLogger("kb.uncaught").error(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )
