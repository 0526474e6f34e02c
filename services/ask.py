"""Asking (the product's main operation): screen the question, resolve a follow-up, search
and answer, log the question and its outcome, queue an escalation. The API's ``/api/ask``,
``/api/ask/stream`` and chat routes and ``kb ask`` all call :func:`answer_question` (or its
steps); its result is the ``/api/ask`` response body.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from kb.db.engine import Database
from kb.db.models import QueryLog
from kb.retrieval.answer import AnswerResult
from kb.retrieval.conversation import Resolution, Resolver, Turn
from kb.retrieval.guidelines import Guidelines, Screened
from kb.retrieval.lang import detect_lang
from kb.retrieval.models import Lang
from kb.retrieval.service import KnowledgeBase
from kb.retrieval.settings import Settings
from kb.retrieval.synonyms import SynonymTable
from kb.retrieval.telemetry import record_ask
from kb.services import memory, memory_read, notifications
from kb.services.conversations import earlier_turns, ensure_conversation, new_conversation_id
from kb.services.identity import Identity
from kb.services.policy import guidelines_for, screen_or_refuse
from kb.services.queue import enqueue
from kb.services.synonyms import synonym_table

log = logging.getLogger("kb.api")


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


class AskResponse(BaseModel):
    """An answer with citations, or an escalation to support."""

    query_id: str
    conversation_id: str = Field(description="Send it with the next question to follow up.")
    status: Literal["answered", "escalated"]
    answer: str
    citations: list[Citation]
    confidence: float
    lang: Literal["ja", "en"]
    mode: Literal["extractive", "generated"] = Field(
        description="``generated``: written by the configured LLM and checked against its "
        "citations; ``extractive``: sentences quoted from the passages."
    )
    fallback_reason: str | None = Field(
        default=None,
        description="Why an answer is extractive although an LLM is configured: llm_error, "
        "llm_timeout, unsupported (too little of its reply passed the check), empty_answer.",
    )
    faithfulness: float | None = Field(
        default=None,
        description="Share of the author's sentences the faithfulness check found supported by "
        "the passage they cite (the model's reply before unsupported sentences were removed); "
        "null when escalated.",
    )


def answer_question(
    kb: KnowledgeBase,
    db: Database,
    identity: Identity,
    question: str,
    lang: Lang | None,
    *,
    guidelines: Guidelines | None = None,
    group_similarity: float | None = None,
    conversation_id: str | None = None,
    turns: list[Turn] | None = None,
    settings: Settings | None = None,
) -> AskResponse:
    """Screen, resolve a follow-up, ask, log the question and its outcome, queue an
    escalation, and build the API response (also used by the CLI and the chat API).

    The guidelines run first: only the masked question is embedded, searched and stored.
    ``guidelines`` and ``group_similarity`` default to the knowledge base's settings.

    :param conversation_id: the caller's conversation this question continues (``None``: a new
        one); its earlier turns resolve a follow-up (:mod:`retrieval.conversation`).
    :param turns: earlier turns given by the caller instead (the chat API's messages).
    :raises PolicyBlockedError: the question mentions a blocked term (recorded as a hit).
    :raises NotFoundError: ``conversation_id`` is unknown or another user's.
    """
    guidelines = guidelines or guidelines_for(kb.settings.guidelines)
    screened = screen_question(kb, db, identity, question, guidelines)
    plan = plan_question(kb, db, identity, screened, lang, conversation_id, guidelines, turns)
    result = plan.alone or kb.ask(
        plan.query,
        acl=identity.acl,
        lang=plan.lang,
        synonyms=plan.synonyms,
        memory=memory_read.memory_for(db, kb),
    )
    return record_answer(
        kb,
        db,
        identity,
        screened,
        result,
        str(uuid.uuid4()),
        group_similarity=group_similarity,
        plan=plan,
        settings=settings,
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """How one question is searched: its conversation, the resolved query, the vocabulary."""

    conversation_id: str
    resolution: Resolution
    query: str
    """The masked query that is searched."""
    lang: Lang
    synonyms: SynonymTable
    alone: AnswerResult | None = None
    """The answer to ``query`` when resolving the question took one (not asked again)."""


def plan_question(
    kb: KnowledgeBase,
    db: Database,
    identity: Identity,
    screened: Screened,
    lang: Lang | None,
    conversation_id: str | None,
    guidelines: Guidelines,
    turns: list[Turn] | None = None,
) -> Plan:
    """Resolve ``screened`` with its conversation's earlier turns (see :func:`answer_question`).

    :raises NotFoundError: ``conversation_id`` is unknown or another user's.
    """
    stored = earlier_turns(db, identity.access, conversation_id)
    lang = lang or detect_lang(screened.text)
    table = synonym_table(db, kb.sparse)
    resolution, alone = Resolver(kb).resolve(
        screened.text, [*(turns or ()), *stored], acl=identity.acl, lang=lang, synonyms=table
    )
    # A model's rewrite is masked like the question before it is searched or stored.
    query = guidelines.screen(resolution.query).text if resolution.rewritten else screened.text
    if resolution.rewritten:
        log.info("follow-up resolved (%s, %s)", resolution.mode, resolution.reason)
    return Plan(
        conversation_id=conversation_id or new_conversation_id(),
        resolution=resolution,
        query=query,
        lang=lang,
        synonyms=table,
        alone=alone,
    )


def screen_question(
    kb: KnowledgeBase,
    db: Database,
    identity: Identity,
    question: str,
    guidelines: Guidelines | None = None,
) -> Screened:
    """The question with personal data masked; :raises PolicyBlockedError: on a blocked term."""
    return screen_or_refuse(
        db,
        guidelines or guidelines_for(kb.settings.guidelines),
        question,
        user_id=identity.user_id,
        department=identity.department,
        endpoint="ask",
    )


def record_answer(
    kb: KnowledgeBase,
    db: Database,
    identity: Identity,
    screened: Screened,
    result: AnswerResult,
    query_id: str,
    *,
    group_similarity: float | None = None,
    plan: Plan,
    settings: Settings | None = None,
) -> AskResponse:
    """Log the question (a turn of its conversation) and its outcome, queue an escalation and
    notify support of it, build the response."""
    groups = {p.chunk.point_id: p.chunk.groups for p in result.passages}
    with db.session() as s:
        ensure_conversation(s, plan.conversation_id, identity.user_id)
        s.flush()
        s.add(
            QueryLog(
                id=query_id,
                question=screened.text,
                redactions=list(screened.redactions),
                user_id=identity.user_id,
                department=identity.department,
                groups=list(identity.groups),
                lang=result.lang,
                status=result.status,
                mode=result.mode,
                confidence=result.confidence,
                citations=[
                    {
                        "n": c.n,
                        "document_id": c.document_id,
                        "version": c.version,
                        "chunk_id": c.chunk_id,
                        # The passage's own groups (a Q&A sheet restricts single rows): who
                        # may later read this question in the queue, analytics or export.
                        "groups": list(groups[c.chunk_id]) if c.chunk_id in groups else None,
                    }
                    for c in result.citations
                ],
                latency_ms=result.timings_ms.get("total_ms", 0.0),
                faithfulness=result.faithfulness,
                fallback_reason=result.fallback_reason,
                conversation_id=plan.conversation_id,
                rewritten=plan.query if plan.resolution.rewritten else None,
                rewrite_mode=plan.resolution.mode if plan.resolution.mode != "standalone" else None,
                memory=result.memory or None,
            )
        )
    record_ask(result.status, result.lang)
    if result.memory:
        memory.note_served(db, result.memory)
    if result.status == "escalated" and kb.embedders:
        placement = enqueue(
            db,
            kb.embedders[0],
            query_id,
            "escalated",
            threshold=group_similarity or kb.settings.support.group_similarity,
            synonyms=plan.synonyms,
            encoder=kb.sparse,
        )
        notifications.on_escalation(
            db, settings or kb.settings, query_id, placement.group_id, "escalated"
        )
    return AskResponse(
        query_id=query_id,
        conversation_id=plan.conversation_id,
        status=result.status,
        answer=result.answer,
        citations=[Citation.model_validate(c, from_attributes=True) for c in result.citations],
        confidence=round(result.confidence, 4),
        lang=result.lang,
        mode=result.mode,
        fallback_reason=result.fallback_reason,
        faithfulness=None if result.faithfulness is None else round(result.faithfulness, 4),
    )
