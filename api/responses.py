"""Response models of the routes that return catalog, run, audit and analytics records
(issue 26): the OpenAPI schema describes every response body.

The routes build these bodies as plain data and declare them with
``response_model_exclude_unset=True``; each model allows extra keys. Together that keeps the
bodies exactly as they were built (no key dropped, none added), while the schema names and
types every field clients may rely on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    """A response body: described fields, extra keys kept as built."""

    model_config = ConfigDict(extra="allow")


# -- documents -------------------------------------------------------------------------------


class InstructionFlag(Body):
    """Text of a document that reads like an instruction to a model (issue 7)."""

    kind: str
    location: str
    excerpt: str


class DocumentOut(Body):
    """A catalog entry. Content owners also see where it comes from on the server."""

    id: str
    title: str
    url: str = Field(description="Where its text is shown (GET).")
    source: str = Field(description="The folder synced, or upload / staff-answers.")
    source_path: str
    version: int
    hash: str
    chunk_count: int
    groups: list[str] = Field(description="Who may read it; empty: everyone.")
    status: str = Field(description="indexed, stale, failed or pending.")
    size_bytes: int | None
    last_ingested: str | None
    last_error: str | None
    flags: list[InstructionFlag]
    outcome: str | None = Field(None, description="Uploads: added, updated or unchanged.")


class DocumentVersionOut(Body):
    """One version of a document."""

    version: int
    hash: str
    chunk_count: int
    created_by: str | None
    created_at: str


class RefusedFile(Body):
    """A file of an upload that was not indexed, and why."""

    name: str
    error_code: str
    detail: str


class UploadResult(Body):
    """What became of each file of an upload or a replacement."""

    run_id: str | None
    documents: list[DocumentOut]
    failed: list[RefusedFile]


# -- ingestion runs --------------------------------------------------------------------------


class RunQueued(Body):
    """A sync accepted: follow it at ``url``."""

    run_id: str
    status: str
    url: str


class RunProgress(Body):
    """Files done of the run's total, and the one in hand."""

    done: int
    total: int
    current: str


class FileOutcome(Body):
    """What a run did to one file."""

    path: str
    document_id: str
    outcome: str = Field(description="added, updated, unchanged, deleted, failed, regrouped.")
    chunks: int | None = None
    seconds: float | None = None
    error: str | None = None
    flags: list[InstructionFlag] | None = None
    warnings: list[str] | None = None


class IngestRunOut(Body):
    """An ingestion run: status, counts and, for one run, every file's outcome."""

    id: str
    source: str
    status: str = Field(description="queued, running, finished, failed or interrupted.")
    started_at: str | None
    finished_at: str | None
    added: int
    updated: int
    unchanged: int
    deleted: int
    failed: int
    regrouped: int
    seconds: float | None
    embedded_chunks: int
    created_by: str | None
    error: str | None
    progress: RunProgress | None
    files: list[FileOutcome] | None = Field(None, description="One run only.")
    hidden_files: int | None = Field(None, description="Files of documents you may not read.")


# -- audit, analytics, evaluation, suggestions, models --------------------------------------


class AuditEntryOut(Body):
    """One entry of the audit log."""

    id: int
    at: str
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any] | None
    ip: str | None


class AnalyticsSummary(Body):
    """Counts, rates and rankings over a window of days (``from``..``to``, inclusive)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    questions: int
    answered: int
    deflected: int
    deflection_rate: float | None
    escalations: int
    bot_escalations: int
    user_escalations: int
    feedback: int
    thumbs_down: int
    helpful_share: float | None
    policy_hits: int
    hidden_questions: int = Field(description="Questions counted but not shown to you.")
    per_day: list[dict[str, Any]]
    per_department: list[dict[str, Any]]
    per_language: list[dict[str, Any]]
    top_questions: list[dict[str, Any]]
    top_unanswered_groups: list[dict[str, Any]]
    most_cited_documents: list[dict[str, Any]]
    never_cited_documents: list[dict[str, Any]]
    most_active_users: list[dict[str, Any]]
    most_active_departments: list[dict[str, Any]]


class EvalDatasetOut(Body):
    """One dataset of an evaluation run, with its headline metrics."""

    name: str
    variant: Any
    questions: Any
    metrics: dict[str, float | None]


class EvalRunOut(Body):
    """An evaluation run (``kb eval``) from its history."""

    id: str
    time: Any = Field(description="When it ran (ISO 8601).")
    commit: Any = Field(description="The git commit it ran on, if known.")
    variants: list[str]
    datasets: list[EvalDatasetOut]
    report_url: str | None


class Suggestion(Body):
    """A question to suggest: one many people asked and got a helpful answer to (``popular``),
    or the question of one of the knowledge base's own Q&A entries (``entry``)."""

    question: str
    kind: Literal["popular", "entry"]
    users: int | None = None
    """How many people asked it (popular questions)."""


class ModelOut(Body):
    """A model the chat endpoint serves (OpenAI's shape)."""

    id: str
    object: str
    created: int
    owned_by: str


class ModelList(Body):
    """The chat endpoint's models (OpenAI's shape)."""

    object: str
    data: list[ModelOut]


class ChatMessageOut(Body):
    """The assistant's message."""

    role: str
    content: str


class ChatChoice(Body):
    """The one choice of a completion."""

    index: int
    message: ChatMessageOut
    finish_reason: str | None


class ChatCompletion(Body):
    """A chat completion (OpenAI's shape); ``kb`` carries the answer's status, confidence,
    citations and conversation. With ``stream: true`` the same arrives as server-sent
    ``chat.completion.chunk`` events, ``kb`` on the last one, then ``[DONE]``."""

    id: str
    object: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: dict[str, int]
    kb: dict[str, Any]
