"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class AskRequest(BaseModel):
    """A question from an employee."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000, description="The question, ja or en.")
    lang: Literal["ja", "en"] | None = Field(
        default=None, description="Answer language; detected from the question when absent."
    )

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question is empty")
        return value.strip()


class Citation(BaseModel):
    """A numbered source of the answer: ``[n]`` in the answer text points here."""

    n: int
    document_id: str
    title: str
    location: str
    url: str
    snippet: str
    score: float
    version: int
    source_path: str


class AskResponse(BaseModel):
    """An answer with citations, or an escalation to support."""

    query_id: str
    status: Literal["answered", "escalated"]
    answer: str
    citations: list[Citation]
    confidence: float
    lang: Literal["ja", "en"]
    mode: str


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    detail: dict[str, object] = Field(default_factory=dict)
