"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

# The ask operation's result is the /api/ask body: defined with the operation (issue 26).
from kb.services.ask import AskResponse as AskResponse
from kb.services.ask import Citation as Citation

RowId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]
"""A row id in a path: a 64-bit integer, as every database stores it (a larger one is a
validation error, not a database error)."""


class AskRequest(BaseModel):
    """A question from an employee."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000, description="The question, ja or en.")
    lang: Literal["ja", "en"] | None = Field(
        default=None,
        description="The asker's interface language. Answers, retrieval and confidence follow "
        "the language of the question's text, detected, whatever this says.",
    )
    conversation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Continue this conversation of yours (a follow-up is resolved with its "
        "earlier turns); absent: a new conversation.",
    )

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question is empty")
        return value.strip()


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    detail: dict[str, object] = Field(default_factory=dict)


# -- the support loop ---------------------------------------------------------------------


def _strip_required(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


class FeedbackRequest(BaseModel):
    """The asker's verdict on an answer."""

    model_config = ConfigDict(extra="forbid")

    query_id: str = Field(min_length=1, max_length=36)
    helpful: bool
    comment: str | None = Field(default=None, max_length=2000)
    citation: int | None = Field(
        default=None,
        ge=1,
        description="With a thumbs-up: the [n] of the source that answered; the question "
        "memory learns that passage (else the first cited).",
    )


class FeedbackResponse(BaseModel):
    """Recorded; a thumbs-down also puts the question in the support queue."""

    query_id: str
    helpful: bool
    queued: bool
    group_id: int | None


class EscalateRequest(BaseModel):
    """ "This did not help, I need a person"."""

    model_config = ConfigDict(extra="forbid")

    query_id: str = Field(min_length=1, max_length=36)
    note: str | None = Field(default=None, max_length=2000)


class EscalateResponse(BaseModel):
    """The question is in the support queue."""

    query_id: str
    queued: bool
    group_id: int


class EarlierTurn(BaseModel):
    """A question asked earlier in the same conversation (masked)."""

    query_id: str
    question: str
    rewritten: str | None
    status: str
    asked_at: str | None


class QueueVariant(BaseModel):
    """One question of a queue group (masked)."""

    query_id: str
    question: str
    lang: str
    user_id: str
    department: str | None
    status: str
    confidence: float
    reasons: list[str]
    note: str | None
    similarity: float
    asked_at: str | None
    conversation_id: str | None = None
    rewritten: str | None = Field(
        default=None, description="What was searched for a follow-up (masked)."
    )
    rewrite_mode: str | None = Field(default=None, description="``context`` or ``llm``.")
    earlier_turns: list[EarlierTurn] = Field(
        default_factory=list, description="The turns before a follow-up that you may read."
    )
    memory: list[MemoryMatch] = Field(
        default_factory=list,
        description="Confirmed questions the question matched (issue 22): pairs and gaps.",
    )


class MemoryMatch(BaseModel):
    """What one close confirmed question contributed to an answer (no question text)."""

    kind: Literal["pair", "gap"]
    entries: list[int]
    sim: float
    p: float = Field(description="Probability that it answers (pair) or is not covered (gap).")
    chunk_id: str | None = None
    document_id: str | None = None
    agreed: bool | None = None
    lifted: bool | None = Field(default=None, description="It lifted the confidence.")
    applied: bool | None = Field(default=None, description="The gap lowered the confidence.")


class QueueLinkRequest(BaseModel):
    """Resolve a queue group as answered by an existing passage."""

    model_config = ConfigDict(extra="forbid")

    document_id: str = Field(min_length=1, max_length=64)
    chunk_id: str = Field(min_length=1, max_length=64)


class MemoryEntryOut(BaseModel):
    """A confirmed pair (question and the passage that answered it) or gap."""

    id: int
    kind: Literal["pair", "gap"]
    how: Literal["helpful", "staff_link", "staff_answer", "not_covered"]
    question: str
    lang: str
    query_id: str | None
    document_id: str | None
    chunk_id: str | None
    version: int | None
    groups: list[str]
    confirmed_by: str
    staff: bool
    state: Literal["active", "demoted", "stale", "removed"]
    negatives: int
    note: str | None
    citation: int | None = Field(
        default=None,
        description="The source the asker named as the one that answered ([n] of the answer); "
        "null: a plain thumbs-up (the answer's first cited passage) or staff.",
    )
    created_at: str
    updated_at: str


class MemoryLearningOut(BaseModel):
    """What the question memory has learned (issue 22): its entries and the ranker fitted on
    them (docs/question-memory.md)."""

    pairs: int
    gaps: int
    match_model_fitted: bool
    """The match model's weights come from these entries (not the conservative prior)."""
    ranker: Literal["learned", "too_few", "no_better", "off", "fitting"]
    """``learned``: new questions are ordered (and, with ``answerability``, gated) by it;
    ``too_few``: under ``min_questions``; ``no_better``: out of fold it did not beat the
    search's own order; ``off``: ``support.memory_ranker`` is off; ``fitting``: not yet."""
    questions: int
    min_questions: int
    answerability: bool
    fused_first_right: float | None = None
    """Out of fold (each fifth ranked by a model fitted on the others): share of the confirmed
    questions whose document the search alone put first..."""
    learned_first_right: float | None = None
    """...and the learned ranker."""
    answer_probability: float | None = None
    """The answerability's probability that answers (it reads as the configured confidence
    threshold, ``retrieval.gate``)..."""
    target_wrong_rate: float | None = None
    """...chosen to hold this wrong-answer rate on the confirmed questions
    (``support.memory_wrong_rate``, or the configured gate's rate on them)..."""
    validated_answered: float | None = None
    """...answering this share of them out of fold..."""
    validated_wrong_rate: float | None = None
    """...this often wrongly (one wrong answer added: a rate read at the threshold chosen on
    the same questions is optimistic)."""
    answerability_right: int | None = None
    """Out of fold, how many confirmed questions that gate answered right..."""
    configured_right: int | None = None
    """...and how many the configured gate answered right without the memory: the learned gate
    is used only when it answers at least as many (``answerability``)."""
    learned_cited: int | None = None
    """Out of fold, how many confirmed questions have their document among the learned
    order's first three passages (those an answer quotes from)..."""
    search_after_cited: int | None = None
    """...and among the learned first passage followed by the search's order..."""
    search_after: bool = False
    """...which is the order given when it finds at least as many: the learned ranker is
    fitted to put the confirmed document first, not to order the rest."""


class PassageOut(BaseModel):
    """A passage found for the staff passage picker."""

    document_id: str
    chunk_id: str
    title: str
    location: str
    snippet: str
    score: float


class QueueGroupOut(BaseModel):
    """One need in the unanswered queue."""

    id: int
    state: Literal["open", "answered", "dismissed"]
    assignee: str | None
    representative: str
    lang: str
    count: int
    hidden: int = 0
    """Questions of this group the caller may not read (their sources are restricted)."""
    users: int
    languages: list[str]
    reasons: dict[str, int]
    first_seen: str | None
    last_seen: str | None
    answer_document_id: str | None
    answered_by: str | None
    answered_at: str | None
    answer: str | None = None
    resolution: Literal["staff_answer", "linked", "not_covered"] | None = None
    linked_document_id: str | None = None
    linked_chunk_id: str | None = None
    variants: list[QueueVariant] = Field(default_factory=list)


class QueuePatch(BaseModel):
    """Change a group's state, assignee (``null`` unassigns) or representative question."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["open", "answered", "dismissed"] | None = None
    assignee: str | None = Field(default=None, max_length=128)
    representative: str | None = Field(default=None, min_length=1, max_length=2000)


class StaffAnswerRequest(BaseModel):
    """A staff answer for a queue group, published as a Q&A entry."""

    model_config = ConfigDict(extra="forbid")

    answer: str = Field(min_length=1, max_length=20000)
    lang: Literal["ja", "en"] | None = None
    groups: list[str] | None = Field(
        default=None,
        description="Access groups of the entry; empty: public; absent: the groups of the "
        "passages its questions were answered from (public when they were public), or, when "
        "editing, the entry's current groups.",
    )
    question: str | None = Field(
        default=None,
        max_length=2000,
        description="The entry's question; defaults to the group's representative question.",
    )

    @field_validator("answer")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return _strip_required(value)


class StaffAnswerOut(BaseModel):
    """A published staff answer: a ``staff-answers`` document."""

    group_id: int
    document_id: str
    question: str
    answer: str | None
    lang: str
    groups: list[str]
    version: int
    answered_by: str | None
    answered_at: str | None
    source_url: str


class HistoryItem(BaseModel):
    """One of the caller's own questions."""

    query_id: str
    question: str
    status: str
    confidence: float
    lang: str
    cited_documents: list[str]
    helpful: bool | None
    asked_at: str


# -- the staff vocabulary (issue 23) ----------------------------------------------------------


class SynonymSetRequest(BaseModel):
    """A set of equivalent terms: abbreviations, internal names, spellings."""

    model_config = ConfigDict(extra="forbid")

    terms: list[str] = Field(min_length=2, max_length=20)


class SynonymSetResponse(BaseModel):
    """A stored set."""

    id: int
    terms: list[str]
    created_by: str
    created_at: str | None


class NotificationEntry(BaseModel):
    """One delivery of an escalation notification."""

    id: int
    query_id: str
    event: str
    channel: Literal["webhook", "email"]
    target: str
    status: Literal["pending", "sending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    group_id: int | None
    created_at: str | None
    next_attempt_at: str | None
    delivered_at: str | None


# -- the OpenAI-compatible chat API (issue 23) -------------------------------------------------


class ChatMessageIn(BaseModel):
    """One message of an OpenAI chat-completions request."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, object]] | None = None

    def text(self) -> str:
        """The message's text (text parts joined; other parts ignored)."""
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return " ".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``: the last user message is the question, the earlier ones
    the conversation. Sampling parameters are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    conversation_id: str | None = Field(
        default=None,
        max_length=64,
        description="Extension: continue a stored conversation instead of reading the history "
        "from the messages.",
    )
