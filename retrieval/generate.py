"""Generated answers, kept faithful to their citations (issue 7).

The flow, after retrieval and the confidence gate of :mod:`retrieval.answer`:

1. The best ``llm.max_passages`` passages are numbered [1]..[n] and quoted in the prompt
   (``retrieval/prompts/answer.<lang>.jinja``) between ``<passage>`` delimiters. Sentences that
   read like instructions to a model are replaced by a marker first (:mod:`retrieval.injection`);
   the model gets no tools.
2. The reply is checked sentence by sentence, as it arrives, with the faithfulness rule of
   :mod:`retrieval.faithfulness` against the passages as the model saw them. A sentence is
   kept only when a passage it cites supports it; it keeps only the citations that support it.
   Uncited sentences, claims the cited passage does not hold and wrong numbers are removed.
   HTML tags, Markdown images and link targets are stripped before the check: the answer is
   plain text.
3. The model saying the passages do not hold the answer ("not in the knowledge base",
   「ナレッジベースにありません」), with nothing supported besides, escalates the question.
4. When less than ``llm.min_supported_share`` of the model's sentences are supported, or none
   is, or the endpoint fails or times out, the extractive answer is given instead
   (``mode="extractive"`` with a ``fallback_reason``).
5. Citations are renumbered 1..k in the order the final answer first cites them.

:class:`AnswerChecker` does steps 2, 3 and 5 on text fed to it piece by piece, so the streaming
endpoint sends only checked sentences.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jinja2

from kb.retrieval.answer import ESCALATION_MESSAGE, AnswerResult, Citation, Generation, Removed
from kb.retrieval.errors import LLMError, LLMTimeoutError
from kb.retrieval.faithfulness import (
    DEFAULT_THRESHOLD,
    FaithfulnessReport,
    Segment,
    SentenceVerdict,
    answer_segments,
    check_faithfulness,
    judge_sentence,
    normalize,
)
from kb.retrieval.injection import neutralize
from kb.retrieval.llm import LLM, Message
from kb.retrieval.models import Lang, ScoredChunk
from kb.retrieval.settings import LLMSettings
from kb.retrieval.text import sentence_joiner

PROMPTS = Path(__file__).resolve().parent / "prompts"

NOT_IN_KB: dict[str, str] = {"en": "not in the knowledge base", "ja": "ナレッジベースにありません"}
"""What the prompt tells the model to reply when the passages do not hold the answer."""

FallbackReason = Literal["llm_error", "llm_timeout", "unsupported", "empty_answer"]

_REFUSAL = re.compile(
    r"\bnot\s+(?:in|found\s+in|covered\s+(?:in|by)|contained\s+in|available\s+in)\s+"
    r"(?:the\s+)?knowledge\s+base"
    r"|\bknowledge\s+base\s+(?:does\s+not|doesn't)\s+(?:contain|cover|answer|say|include)"
    r"|\bpassages\s+do\s+not\s+(?:contain|answer|say|mention|include|hold)"
    r"|ナレッジベース(?:に|には|の中に|内に)?.{0,12}?"
    r"(?:ありません|見つかりません|含まれていません|記載されていません|存在しません)"
    r"|パッセージ(?:に|には).{0,12}?(?:ありません|見つかりません|含まれていません|記載されていません)",
    re.IGNORECASE,
)
_MARKER = re.compile(r"\s*\[\s*\d+(?:\s*[,、]\s*\d+)*\s*\]")
_PARTIAL_MARKER = re.compile(r"\[[\d\s,、]*$")
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*[^\d\s,、\]][^\]]*)\]\((?:[^)]*)\)")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<!--.*?-->", re.DOTALL)
_BARE_URL = re.compile(r"\b(?:https?|ftp|file|data|javascript):[^\s)\]>]*", re.IGNORECASE)


# --- the prompt -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptPassage:
    """A passage as the model sees it: number, title, location and (neutralised) text."""

    n: int
    title: str
    location: str
    text: str
    passage: ScoredChunk
    removed: int = 0
    """Sentences replaced because they read like instructions to a model."""


def prompt_passages(passages: Sequence[ScoredChunk], max_passages: int) -> list[PromptPassage]:
    """The best ``max_passages`` passages, numbered from 1, injection-like text neutralised.
    A Q&A entry shows its question and answer."""
    out: list[PromptPassage] = []
    for i, p in enumerate(passages[:max_passages]):
        chunk = p.chunk
        raw = f"Q: {chunk.question}\nA: {chunk.text}" if chunk.question else chunk.text
        text, removed = neutralize(raw)
        out.append(
            PromptPassage(
                n=i + 1,
                title=_attribute(chunk.title),
                location=_attribute(chunk.location.label()),
                text=text.strip(),
                passage=p,
                removed=removed,
            )
        )
    return out


def _attribute(value: str) -> str:
    # Titles and locations come from documents too: they must not close the delimiter.
    plain = unicodedata.normalize("NFKC", value)
    return " ".join(re.sub(r'["<>]', "'", plain).split())


@lru_cache(maxsize=4)
def _template(lang: str) -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPTS),
        autoescape=False,  # plain text for a model, not HTML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )
    return env.get_template(f"answer.{lang}.jinja")


def build_messages(question: str, lang: Lang, passages: Sequence[PromptPassage]) -> list[Message]:
    """The system and user messages for ``question`` over ``passages`` (template per language)."""
    template = _template(lang)
    context: dict[str, Any] = {
        "question": " ".join(question.split()),
        "passages": passages,
        "not_in_kb": NOT_IN_KB[lang],
    }
    system = "".join(template.blocks["system"](template.new_context(context))).strip()
    user = "".join(template.blocks["user"](template.new_context(context))).strip()
    return [Message("system", system), Message("user", user)]


# --- checking the reply ---------------------------------------------------------------------


def sanitize(text: str) -> str:
    """Plain text only: HTML tags and comments removed, Markdown images removed, Markdown links
    reduced to their text, bare URLs with a scheme removed (nothing in an answer may load or
    point anywhere the passages did not)."""
    text = _HTML_TAG.sub("", text)
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    return _BARE_URL.sub("", text)


def is_refusal(sentence: str) -> bool:
    """Whether a sentence says the knowledge base does not hold the answer (en or ja)."""
    plain = unicodedata.normalize("NFKC", sentence)
    return bool(_REFUSAL.search(plain)) or normalize(plain) in {
        normalize(v) for v in NOT_IN_KB.values()
    }


@dataclass(slots=True)
class Piece:
    """A checked sentence ready to show: ``text`` (with the white space before it and its new
    citation markers) and the passages it cites, by their new number, first citations first."""

    text: str
    new_citations: list[tuple[int, PromptPassage]]


class AnswerChecker:
    """Checks a model's reply sentence by sentence, as it arrives.

    :meth:`feed` takes the next piece of the reply and returns the sentences that became
    complete and passed the check, renumbered; :meth:`finish` ends the reply and returns the
    rest. :attr:`verdicts`, :attr:`removed`, :attr:`refused` and :meth:`report` describe it.
    """

    def __init__(
        self,
        passages: Sequence[PromptPassage],
        lang: Lang,
        *,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        self.passages = {p.n: p for p in passages}
        self.texts = {p.n: p.text for p in passages}
        self.lang = lang
        self.threshold = threshold
        self.raw = ""
        self.verdicts: list[SentenceVerdict] = []
        self.removed: list[Removed] = []
        self.refused = False
        self.kept: list[Piece] = []
        self.numbering: dict[int, int] = {}
        """Prompt passage number -> number in the final answer."""
        self._done = 0
        self._prev_end = 0

    def feed(self, piece: str) -> list[Piece]:
        """Add ``piece`` to the reply. :returns: newly completed sentences that passed."""
        self.raw += piece
        text = _PARTIAL_MARKER.sub("", self.raw)
        segments, plain = self._segments(text)
        # The last sentence may still grow (or gain markers): only those before it are final.
        return self._judge(segments[self._done : max(len(segments) - 1, self._done)], plain)

    def finish(self) -> list[Piece]:
        """The reply is complete. :returns: the remaining sentences that passed."""
        segments, plain = self._segments(self.raw)
        return self._judge(segments[self._done :], plain)

    @property
    def answer(self) -> str:
        """The checked answer so far: the kept sentences with their new markers."""
        return "".join(p.text for p in self.kept).strip()

    @property
    def cited(self) -> list[PromptPassage]:
        """The cited passages in their new order (new number = index + 1)."""
        by_new = sorted(self.numbering.items(), key=lambda kv: kv[1])
        return [self.passages[old] for old, _ in by_new]

    def report(self) -> FaithfulnessReport:
        """Verdicts on the model's sentences (refusals left out) and the share supported."""
        verdicts = tuple(self.verdicts)
        score = sum(v.supported for v in verdicts) / len(verdicts) if verdicts else 1.0
        return FaithfulnessReport(sentences=verdicts, score=score)

    # -- internals -------------------------------------------------------------------------

    def _segments(self, text: str) -> tuple[list[Segment], str]:
        clean = sanitize(unicodedata.normalize("NFKC", text))
        return answer_segments(clean), clean

    def _judge(self, segments: Sequence[Segment], plain: str) -> list[Piece]:
        out: list[Piece] = []
        for seg in segments:
            self._done += 1
            gap = plain[self._prev_end : seg.start]
            self._prev_end = seg.end
            if is_refusal(seg.text):
                self.refused = True
                self.removed.append(Removed(seg.text, seg.citations, "not_in_kb"))
                continue
            verdict = judge_sentence(seg.text, seg.citations, self.texts, threshold=self.threshold)
            self.verdicts.append(verdict)
            if not verdict.supported:
                self.removed.append(Removed(seg.text, seg.citations, verdict.reason))
                continue
            # Keep only the numbers whose passage supports the sentence on its own.
            backing = [
                n
                for n in seg.citations
                if n in self.texts
                and judge_sentence(seg.text, (n,), self.texts, threshold=self.threshold).supported
            ]
            new: list[tuple[int, PromptPassage]] = []
            for n in backing:
                if n not in self.numbering:
                    self.numbering[n] = len(self.numbering) + 1
                    new.append((self.numbering[n], self.passages[n]))
            body = _MARKER.sub("", plain[seg.start : seg.end]).strip()
            markers = "".join(f"[{self.numbering[n]}]" for n in backing)
            lead = _gap(gap, self.lang) if self.kept or out else ""
            piece = Piece(f"{lead}{body} {markers}", new)
            out.append(piece)
            self.kept.append(piece)
        return out


def _gap(gap: str, lang: Lang) -> str:
    """The layout between two kept sentences: line breaks kept (at most two), else a space in
    English and nothing in Japanese."""
    plain = _MARKER.sub("", gap)
    breaks = plain.count("\n")
    if breaks:
        return "\n" * min(breaks, 2)
    return sentence_joiner(lang)


# --- the whole flow -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delta:
    """Checked answer text to append (streaming)."""

    text: str


@dataclass(frozen=True, slots=True)
class NewCitations:
    """Citations first used by the text that follows (streaming)."""

    citations: list[Citation]


@dataclass(frozen=True, slots=True)
class Final:
    """The finished answer: what ``/api/ask`` returns and the stream's last event holds."""

    result: AnswerResult


AskEvent = Delta | NewCitations | Final

CitationFactory = Callable[[int, ScoredChunk], Citation]


def generate(
    question: str,
    extractive: AnswerResult,
    llm: LLM,
    settings: LLMSettings,
    make_citation: CitationFactory,
    *,
    stream: bool = False,
) -> Iterator[AskEvent]:
    """Write a generated answer for a question the extractive path answered.

    :param question: the (masked) question.
    :param extractive: the extractive result: its passages feed the prompt and it is the
        fallback. Must have ``status == "answered"``.
    :param make_citation: builds the public citation of a passage under a number.
    :param stream: read the reply as it is written (and yield checked text as it passes);
        otherwise one ``complete`` call and the text comes in one :class:`Delta` at the end.
    :returns: events; the last one is always :class:`Final`.
    """
    t0 = time.perf_counter()
    lang = extractive.lang
    passages = prompt_passages(extractive.passages, settings.max_passages)
    info = Generation(model=llm.name, neutralized=sum(p.removed for p in passages))
    checker = AnswerChecker(passages, lang)
    messages = build_messages(question, lang, passages)
    reason: FallbackReason | None = None
    sent = False
    try:
        if stream:
            for chunk in llm.stream(messages):
                for event in _pieces(checker.feed(chunk), make_citation):
                    sent = True
                    yield event
        else:
            checker.feed(llm.complete(messages))
    except LLMTimeoutError as exc:
        reason, info.error = "llm_timeout", exc.detail
    except LLMError as exc:
        reason, info.error = "llm_error", exc.detail
    info.raw = checker.raw
    if reason is None:
        rest = checker.finish()
        report = checker.report()
        info.score = report.score if report.sentences else None
        info.removed, info.refused = checker.removed, checker.refused
        supported = sum(v.supported for v in report.sentences)
        if checker.refused and supported == 0:
            yield Final(_escalated(extractive, info, t0))
            return
        if not report.sentences:
            reason = "empty_answer"
        elif supported == 0 or report.score < settings.min_supported_share:
            reason = "unsupported"
        else:
            if stream:
                yield from _pieces(rest, make_citation)
            else:
                yield from _pieces(checker.kept, make_citation, merge=True)
            yield Final(_generated(extractive, checker, info, make_citation, t0))
            return
    # Fall back: the extractive answer, whole (the client replaces what it showed).
    result = _fallback(extractive, info, reason, t0)
    if not stream or not sent:
        yield NewCitations(list(result.citations))
        yield Delta(result.answer)
    yield Final(result)


def _pieces(
    pieces: Sequence[Piece], make_citation: CitationFactory, *, merge: bool = False
) -> Iterator[AskEvent]:
    if merge and pieces:
        new = [c for p in pieces for c in p.new_citations]
        yield NewCitations([make_citation(n, pp.passage) for n, pp in new])
        yield Delta("".join(p.text for p in pieces).strip())
        return
    for piece in pieces:
        if piece.new_citations:
            yield NewCitations([make_citation(n, pp.passage) for n, pp in piece.new_citations])
        yield Delta(piece.text)


def _derived(extractive: AnswerResult, info: Generation, t0: float, **changes: Any) -> AnswerResult:
    """The extractive result with ``changes``, the generation's record and its time added."""
    ms = (time.perf_counter() - t0) * 1000
    timings = dict(extractive.timings_ms)
    timings["generate_ms"] = ms
    timings["total_ms"] = timings.get("total_ms", 0.0) + ms
    return replace(extractive, generation=info, timings_ms=timings, **changes)


def _generated(
    extractive: AnswerResult,
    checker: AnswerChecker,
    info: Generation,
    make_citation: CitationFactory,
    t0: float,
) -> AnswerResult:
    return _derived(
        extractive,
        info,
        t0,
        status="answered",
        answer=checker.answer,
        citations=[make_citation(i + 1, p.passage) for i, p in enumerate(checker.cited)],
        mode="generated",
        faithfulness=info.score,
    )


def _escalated(extractive: AnswerResult, info: Generation, t0: float) -> AnswerResult:
    return _derived(
        extractive,
        info,
        t0,
        status="escalated",
        answer=ESCALATION_MESSAGE[extractive.lang],
        citations=[],
        mode="generated",
        faithfulness=None,
    )


def _fallback(
    extractive: AnswerResult, info: Generation, reason: FallbackReason | None, t0: float
) -> AnswerResult:
    return _derived(
        extractive,
        info,
        t0,
        citations=list(extractive.citations),
        mode="extractive",
        fallback_reason=reason,
    )


def extractive_faithfulness(result: AnswerResult) -> float | None:
    """The check's score of an extractive answer against the passages it cites (None when
    escalated)."""
    if result.status != "answered":
        return None
    by_point = {p.chunk.point_id: p.chunk.text for p in result.passages}
    texts = {c.n: by_point.get(c.chunk_id, c.snippet) for c in result.citations}
    return check_faithfulness(result.answer, texts).score
