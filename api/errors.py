"""One error shape for every error: ``{"error_code": "...", "detail": "...", "message": "..."}``.

Services raise :class:`~retrieval.errors.KBError` subclasses; only this module knows HTTP.
``detail`` is the service's own words (English, for logs and scripts); ``message`` is for
people, in the language the request's ``Accept-Language`` prefers (issue 25): Japanese is
translated here, by error code, in one place, so no route knows about languages; English is
the detail itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from enum import Enum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kb.api.denials import record_denial
from kb.api.messages import _LANG, error_body, preferred_lang
from kb.retrieval.errors import KBError
from kb.retrieval.telemetry import record_error

log = logging.getLogger(__name__)


class ApiError(KBError):
    """A :class:`KBError` that carries response headers (``Retry-After``)."""

    def __init__(self, detail: str, *, code: str, headers: dict[str, str]) -> None:
        super().__init__(detail, code=code)
        self.headers = headers


class ErrorCode(Enum):
    """Stable error codes and their HTTP status."""

    VALIDATION_ERROR = ("VALIDATION_ERROR", 422)
    UNAUTHENTICATED = ("UNAUTHENTICATED", 401)
    RATE_LIMITED = ("RATE_LIMITED", 429)
    PAYLOAD_TOO_LARGE = ("PAYLOAD_TOO_LARGE", 413)
    CONFIGURATION_ERROR = ("CONFIGURATION_ERROR", 500)
    NOT_FOUND = ("NOT_FOUND", 404)
    FORBIDDEN = ("FORBIDDEN", 403)
    POLICY_BLOCKED = ("POLICY_BLOCKED", 422)
    NO_INDEXED_DOCUMENTS = ("NO_INDEXED_DOCUMENTS", 409)
    PARSE_ERROR = ("PARSE_ERROR", 422)
    INGEST_ERROR = ("INGEST_ERROR", 422)
    INVALID_FILENAME = ("INVALID_FILENAME", 422)
    FILE_TOO_LARGE = ("FILE_TOO_LARGE", 413)
    CONFLICT = ("CONFLICT", 409)
    STORE_ERROR = ("STORE_ERROR", 503)
    STORE_LOCKED = ("STORE_LOCKED", 503)
    DATABASE_UNAVAILABLE = ("DATABASE_UNAVAILABLE", 503)
    NOT_READY = ("NOT_READY", 503)
    LLM_PROVIDER_ERROR = ("LLM_PROVIDER_ERROR", 502)
    LLM_TIMEOUT = ("LLM_TIMEOUT", 504)
    INTERNAL_ERROR = ("INTERNAL_ERROR", 500)

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]


_BY_CODE = {e.code: e for e in ErrorCode}


def error_response(
    code: str, detail: str, status: int | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The JSON error body; status from the code unless given."""
    status = status or _BY_CODE.get(code, ErrorCode.INTERNAL_ERROR).status
    record_error(code)
    if status >= 500:
        log.error("%s: %s", code, detail)
    else:
        log.warning("%s: %s", code, detail)
    if code == ErrorCode.UNAUTHENTICATED.code:
        headers = {"WWW-Authenticate": 'Bearer realm="kb"', **(headers or {})}
    return JSONResponse(error_body(code, detail), status_code=status, headers=headers)


class ErrorLanguageMiddleware:
    """Read each request's ``Accept-Language`` once, for :func:`error_body` (pure ASGI, the
    outermost layer, so the limits' and the handlers' errors all speak it)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or ()).get(b"accept-language", b"")
        token = _LANG.set(preferred_lang(raw.decode("latin-1")))
        try:
            await self.app(scope, receive, send)
        finally:
            _LANG.reset(token)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def register_error_handlers(app: FastAPI) -> None:
    """Install the handlers that turn every error into the one shape."""

    @app.exception_handler(KBError)
    async def _kb_error(request: Request, exc: KBError) -> JSONResponse:
        if exc.code == ErrorCode.FORBIDDEN.code and not getattr(
            request.state, "denial_recorded", False
        ):
            # A refusal of the access rule (issue 19) lands in the audit log like a role's.
            actor = getattr(request.state, "user_id", "anonymous")
            record_denial(request, actor, 403, exc.detail)
        return error_response(exc.code, exc.detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(SATimeoutError)
    async def _database(_request: Request, exc: Exception) -> JSONResponse:
        # The database is down, unreachable or locked: say so; the pool reconnects by itself
        # when it is back (pre-ping on PostgreSQL, a fresh file handle on SQLite).
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        return error_response(
            ErrorCode.DATABASE_UNAVAILABLE.code,
            f"the database is unavailable ({exc.__class__.__name__}: {reason}); retry shortly",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(ErrorCode.VALIDATION_ERROR.code, _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "NOT_FOUND",
            403: "FORBIDDEN",
            405: "METHOD_NOT_ALLOWED",
            413: "PAYLOAD_TOO_LARGE",
        }.get(exc.status_code, "HTTP_ERROR")
        return error_response(code, str(exc.detail), exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(ErrorCode.INTERNAL_ERROR.code, "internal error", 500)
