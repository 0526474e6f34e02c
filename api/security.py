"""Security headers on every response (issue 20).

- ``Content-Security-Policy``: scripts and styles from this origin only (the pages have no
  inline script; one that needs it must be added by its hash), no plugins, no base or form
  targets elsewhere. ``frame-ancestors``: the pages a widget origin may embed (the ask page
  ``/`` and the demo) allow this origin and ``KB_AUTH__CORS_ORIGINS``; every other page, the
  staff pages and ``/docs`` among them, allows none (``X-Frame-Options: DENY`` too, for old
  browsers). API responses get ``default-src 'none'``. A route that sets its own policy (the
  source viewer's ``sandbox``) keeps it.
- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin`` everywhere.
"""

from __future__ import annotations

from kb.api.limits import ASGIApp, Message, Receive, Scope, Send
from kb.retrieval.settings import Settings

EMBEDDABLE = frozenset({"/", "/demo"})
"""Pages another origin may show in a frame."""

_PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
)
_API_POLICY = "default-src 'none'; frame-ancestors 'none'"


def page_policy(frame_origins: list[str] | None) -> str:
    """The CSP of a page: ``frame_origins`` ``None`` for a page no one may frame."""
    ancestors = "'none'" if frame_origins is None else " ".join(["'self'", *frame_origins])
    return _PAGE_POLICY.format(ancestors=ancestors)


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.embeddable = page_policy(list(settings.auth.cors_origins))
        self.staff = page_policy(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        embeddable = path in EMBEDDABLE
        if path.startswith("/api/") or path in ("/healthz", "/readyz", "/openapi.json"):
            policy = _API_POLICY
        else:
            policy = self.embeddable if embeddable else self.staff
        extra: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"content-security-policy", policy.encode("latin-1")),
        ]
        if not embeddable:
            extra.append((b"x-frame-options", b"DENY"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
