"""The operations settings: escalation notifications, logging and metrics (``KB_NOTIFY__*``,
``KB_LOG__*``, ``KB_METRICS__*``), parts of :class:`retrieval.settings.Settings`."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode


class NotifySettings(BaseModel):
    """Escalation notifications (issue 23): a signed webhook and e-mail, from a background
    worker. Nothing is sent while neither is configured."""

    webhook_url: str | None = None
    """POSTed a JSON event per escalation, signed with ``webhook_secret``."""
    webhook_secret: SecretStr | None = None
    smtp_url: SecretStr | None = None
    """``smtp://[user:password@]host[:port]`` or ``smtps://...`` (TLS from the start)."""
    email_to: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Addresses, comma-separated or a JSON list."""
    email_from: str = "kb-assistant@localhost"
    digest_s: float = Field(default=0.0, ge=0.0)
    """0: one e-mail per escalation; N: escalations are collected and each recipient gets one
    digest e-mail once the oldest waiting one is N seconds old (3600: hourly)."""
    group_emails: dict[str, list[str]] = Field(default_factory=dict)
    """Access group -> addresses: an escalation of a question drawn from that group's documents
    goes to those addresses instead of ``email_to``."""
    max_attempts: int = Field(default=6, ge=1, le=20)
    retry_base_s: float = Field(default=2.0, gt=0)
    """Wait before the second attempt; doubled for each next one (capped at an hour)."""
    timeout_s: float = Field(default=10.0, gt=0)
    poll_s: float = Field(default=1.0, gt=0)
    """How often the worker looks for due deliveries."""

    @field_validator("email_to", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _complete(self) -> NotifySettings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("notify.webhook_url needs notify.webhook_secret to sign with")
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError("notify.webhook_url must be an http:// or https:// URL")
        if self.smtp_url:
            url = self.smtp_url.get_secret_value()
            if not url.startswith(("smtp://", "smtps://")):
                raise ValueError("notify.smtp_url must start with smtp:// or smtps://")
            if not self.email_to and not self.group_emails:
                raise ValueError("notify.smtp_url needs notify.email_to (or group_emails)")
        return self


class LogSettings(BaseModel):
    """Logging (issue 24): ``KB_LOG__FORMAT``, ``KB_LOG__LEVEL`` (``retrieval/logs.py``)."""

    format: Literal["text", "json"] = "text"
    """``json``: one JSON object a line, every line (uvicorn's and warnings included)."""
    level: str = "INFO"
    access: bool = True
    """One ``kb.access`` line per HTTP request (method, path, status, duration, client)."""

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        name = str(value).upper()
        if name not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("log.level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return name


class MetricsSettings(BaseModel):
    """``GET /metrics`` in Prometheus' text format (issue 24, docs/operations.md)."""

    enabled: bool = True
    token: SecretStr | None = None
    """When set, ``/metrics`` wants ``Authorization: Bearer <token>`` (else open, like
    ``/healthz``: keep it on the internal network)."""
