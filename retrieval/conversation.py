"""Follow-up questions (issue 23): a question resolved with the earlier turns of its conversation
before retrieval.

"How do I reset it?" after an answer about the Aster MF-3400 retrieves noise on its own. Two
resolutions, both giving the query that is searched (the answer cites as usual):

- **Without a model** (:func:`contextual_query`), deterministic: a follow-up that lacks its own
  subject (a pronoun or demonstrative: "it", "that one", 「それ」「その」; an ellipsis: "and the
  colour one?", 「英語版は？」; or almost no content words) is searched together with the earlier
  question's content words and the title of the document its answer cited first. A question that
  names its own subject is searched alone, so a new topic is not dragged toward the old one.
- **With a model** (:func:`llm_rewrite`): the model rewrites the follow-up into a question that
  stands alone (``retrieval/prompts/rewrite.<lang>.jinja``). The rewrite is checked (one line,
  not too long, built from the conversation's words, not the model's own) and, when it fails
  the check or the model fails, the deterministic query is used; the reason is logged.

:class:`Resolver` also asks the knowledge base when a follow-up only *might* lack a subject (few
content words, no pronoun): if the question alone is answered, it stands alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jinja2

from kb.retrieval.errors import LLMError
from kb.retrieval.lang import detect_lang
from kb.retrieval.llm import LLM, Message
from kb.retrieval.models import AccessFilter, Lang
from kb.retrieval.protocols import SparseEncoder
from kb.retrieval.sparse import BM25Encoder, normalize_text
from kb.retrieval.synonyms import EMPTY, SynonymTable

if TYPE_CHECKING:
    from kb.retrieval.answer import AnswerResult
    from kb.retrieval.service import KnowledgeBase

log = logging.getLogger(__name__)

PROMPTS = Path(__file__).resolve().parent / "prompts"
MAX_TURNS = 3
"""Earlier turns a follow-up is resolved with (the newest ones)."""
MAX_REWRITE_CHARS = 400
MIN_OWN_SHARE = 0.5
"""Share of a model rewrite's terms that must come from the conversation itself."""

Mode = Literal["standalone", "context", "llm"]

_EN_ANAPHORA = re.compile(
    r"\b(it|its|it's|itself|this|that|these|those|they|them|their|there|one|ones|same|"
    r"former|latter|above)\b",
    re.IGNORECASE,
)
_EN_ELLIPSIS = re.compile(
    r"^\s*(and|what about|how about|what if|also|then|so|but|or|in that case)\b", re.IGNORECASE
)
_JA_ANAPHORA = re.compile(
    r"(それ|これ|あれ|その|この|あの|そこ|そちら|こちら|同じ|前者|後者|上記|そう|そういう)"
)
_JA_ELLIPSIS = re.compile(
    r"^\s*(じゃあ|では|それで|あと|ちなみに|また|なら)|^.{1,12}(は|って|の場合)[？?]?\s*$"
)
MIN_SUBJECT_WORDS = 2
"""A question with fewer content words may lack a subject (checked against the knowledge base)."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier turn of a conversation, as stored (masked)."""

    question: str
    """The question as asked."""
    query: str
    """What was searched for it (the resolved query of a follow-up, else the question)."""
    titles: tuple[str, ...] = ()
    """Titles of the documents its answer cited, first citation first."""


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a question is searched as, and why."""

    query: str
    mode: Mode
    reason: str
    carried: tuple[str, ...] = ()
    """The words and title taken from earlier turns (deterministic mode)."""

    @property
    def rewritten(self) -> bool:
        """Whether the query differs from the question."""
        return self.mode != "standalone"


def follow_up_reason(question: str, encoder: BM25Encoder, lang: Lang | None = None) -> str | None:
    """Why ``question`` cannot stand alone: ``pronoun``, ``ellipsis``, ``no_subject`` (few
    content words: only a hint), or ``None`` when it names its own subject."""
    text = normalize_text(question)
    lang = lang or detect_lang(text)
    if lang == "ja":
        if _JA_ANAPHORA.search(text):
            return "pronoun"
        if _JA_ELLIPSIS.search(text):
            return "ellipsis"
    if _EN_ANAPHORA.search(text):
        return "pronoun"
    if _EN_ELLIPSIS.search(text):
        return "ellipsis"
    if len(encoder.content_words(text)) < MIN_SUBJECT_WORDS:
        return "no_subject"
    return None


def contextual_query(
    question: str, turns: Sequence[Turn], encoder: BM25Encoder, *, lang: Lang | None = None
) -> Resolution:
    """The deterministic resolution: ``question`` alone when it names its own subject, else
    with the latest turn's content words and first cited title appended."""
    reason = follow_up_reason(question, encoder, lang) if turns else None
    if reason is None:
        return Resolution(question, "standalone", "stands alone" if turns else "first turn")
    return with_context(question, turns, encoder, reason)


_EN_FRAME = frozenset(
    "many much long often old far big fast soon wait take need want get like also still".split()
)
"""Words of an English question's frame ("how long", "how many") that say nothing of its
subject: not carried into a follow-up."""


def with_context(
    question: str, turns: Sequence[Turn], encoder: BM25Encoder, reason: str
) -> Resolution:
    """``question`` followed by what the latest turn was about: its content words (those the
    question does not hold) and the title of the document its answer cited first."""
    last = turns[-1]
    own = {w.casefold() for w in encoder.content_words(question)}
    carried: list[str] = []
    for word in encoder.content_words(last.query):
        if word.casefold() in _EN_FRAME:
            continue
        if word.casefold() not in own and word.casefold() not in {c.casefold() for c in carried}:
            carried.append(word)
    title = next((t for t in last.titles if t), None)
    if title and title.casefold() not in {c.casefold() for c in carried}:
        carried.append(title)
    if not carried:
        return Resolution(question, "standalone", f"{reason}, nothing to carry")
    return Resolution(f"{question} {' '.join(carried)}", "context", reason, tuple(carried))


@lru_cache(maxsize=4)
def _template(lang: str) -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPTS),
        autoescape=False,  # plain text for a model
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template(f"rewrite.{lang}.jinja")


def rewrite_messages(question: str, turns: Sequence[Turn], lang: Lang) -> list[Message]:
    """The system and user messages asking a model to make ``question`` stand alone."""
    template = _template(lang)
    context: dict[str, Any] = {
        "question": " ".join(question.split()),
        "turns": [
            {"question": " ".join(t.question.split()), "titles": list(t.titles[:2])}
            for t in turns[-MAX_TURNS:]
        ],
    }
    system = "".join(template.blocks["system"](template.new_context(context))).strip()
    user = "".join(template.blocks["user"](template.new_context(context))).strip()
    return [Message("system", system), Message("user", user)]


def check_rewrite(
    reply: str, question: str, turns: Sequence[Turn], encoder: SparseEncoder
) -> tuple[str | None, str]:
    """The model's rewrite cleaned, or ``None`` and why it is refused: empty, too long, or
    built mostly from words that are in neither the question nor the earlier turns (the model
    answering, or adding a subject of its own)."""
    lines = [ln.strip() for ln in reply.strip().splitlines() if ln.strip()]
    if not lines:
        return None, "empty"
    text = re.sub(r"^(rewritten question|question|質問)\s*[:：]\s*", "", lines[0], flags=re.I)
    text = text.strip().strip('"“”「」').strip()
    if not text:
        return None, "empty"
    if len(text) > max(MAX_REWRITE_CHARS, 3 * len(question)):
        return None, "too_long"
    terms = set(encoder.terms(text))
    if not terms:
        return None, "no_terms"
    own = set(encoder.terms(question))
    context = set(own)
    for t in turns:
        context.update(encoder.terms(" ".join([t.question, t.query, *t.titles])))
    if own and not own & terms:
        return None, "lost_question"
    if len(terms & context) / len(terms) < MIN_OWN_SHARE:
        return None, "new_words"
    return text, "ok"


def llm_rewrite(
    question: str,
    turns: Sequence[Turn],
    llm: LLM,
    encoder: BM25Encoder,
    *,
    lang: Lang,
    timeout: float | None = None,
) -> Resolution:
    """The model's rewrite of a follow-up, checked; the deterministic query when the model
    fails or its rewrite does not pass (the reason is logged and recorded)."""
    try:
        reply = llm.complete(rewrite_messages(question, turns, lang), timeout=timeout)
    except LLMError as exc:
        log.warning("follow-up rewrite failed (%s): deterministic query used", exc.code)
        fallback = contextual_query(question, turns, encoder, lang=lang)
        return Resolution(fallback.query, fallback.mode, f"llm_error: {fallback.reason}",
                          fallback.carried)  # fmt: skip
    text, why = check_rewrite(reply, question, turns, encoder)
    if text is None:
        log.warning("follow-up rewrite refused (%s): deterministic query used", why)
        fallback = contextual_query(question, turns, encoder, lang=lang)
        return Resolution(fallback.query, fallback.mode, f"llm_{why}: {fallback.reason}",
                          fallback.carried)  # fmt: skip
    log.info("follow-up rewritten by %s", llm.name)
    if text == question:
        return Resolution(question, "standalone", "llm: stands alone")
    return Resolution(text, "llm", "llm")


class Resolver:
    """Resolves a conversation's next question against one knowledge base."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb

    def resolve(
        self,
        question: str,
        turns: Sequence[Turn],
        *,
        acl: AccessFilter,
        lang: Lang | None = None,
        synonyms: SynonymTable = EMPTY,
    ) -> tuple[Resolution, AnswerResult | None]:
        """The query to search for ``question`` after ``turns``, and the answer to that query
        when finding the resolution took one (``None``: ask it).

        With a model configured, the model rewrites. Without, a pronoun or an ellipsis takes
        the earlier turn's subject (:func:`with_context`); any other question is first asked
        alone and keeps its own words when that answers it, or when the earlier subject does
        not answer it either.
        """
        if not turns:
            return Resolution(question, "standalone", "first turn"), None
        lang = lang or detect_lang(question)
        encoder = self.kb.sparse
        if self.kb.llm is not None:
            return llm_rewrite(question, turns, self.kb.llm, encoder, lang=lang), None
        reason = follow_up_reason(question, encoder, lang)
        if reason in ("pronoun", "ellipsis"):
            return with_context(question, turns, encoder, reason), None
        # No pronoun or ellipsis: the question stands alone when the knowledge base answers
        # it alone; otherwise the earlier turn's subject is tried, and kept only if it answers
        # (a new topic is never dragged toward the old one, not even in the queue).
        alone = self.kb.ask(question, acl=acl, lang=lang, synonyms=synonyms)
        if alone.status == "answered":
            return Resolution(question, "standalone", "answered alone"), alone
        context = with_context(question, turns, encoder, reason or "unanswered alone")
        if context.rewritten:
            result = self.kb.ask(context.query, acl=acl, lang=lang, synonyms=synonyms)
            if result.status == "answered":
                return context, result
        return Resolution(question, "standalone", "unanswered either way"), alone
