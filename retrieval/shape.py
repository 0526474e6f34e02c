"""How an extractive answer reads (issue 21, item 7): asked how to do something, the answer is
the procedure that does it, quoted whole with its steps in order from one passage, instead of
the sentences that repeat the question's words most (which quoted warnings and the second step
out of order, with the other language's guide beside them).

The confidence is computed before this, on the answer as :func:`retrieval.extractive.
compose_extractive` scores it (its coverage of the question is what the model was fitted on);
shaping changes what is quoted, never whether the question is answered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from kb.retrieval.extractive import quote
from kb.retrieval.injection import find_instructions
from kb.retrieval.models import Lang, ScoredChunk
from kb.retrieval.protocols import SparseEncoder
from kb.retrieval.proximity import adjacent, fields, pairs
from kb.retrieval.text import sentence_joiner

MAX_STEPS = 12
"""Steps quoted at most; a longer procedure is cut (its passage is cited for the rest)."""

_STEP = re.compile(r"^\s*(\d{1,2})(?:[.)．）]\s*(?!\d)|\s+)(\S.*)$")
"""A numbered step: "1. Open ...", "1 Open ..." (PDF text), "1．前カバーを...", "2) ...";
not "1.1 Overview" (a section number)."""

_HOW = (
    re.compile(
        r"\bhow (?:do|can|should|would|to|does)\b|\bsteps?\b|\bprocedure\b|\binstructions?\b"
        r"|\bwhat should (?:i|we) do\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"方法|手順|やり方|やりかた|仕方|しかた|どうすれば|どうやって|どのように|には[？?]?\s*$"
    ),
    # A verb stem and 方: 「直し方」「使い方」 (not 「この方」, nor 「両方」 or 「夕方」).
    re.compile(r"[ぁ-ゖ](?<!の)方"),
)
"""Questions that ask for a procedure."""

_ENDS = (".", "。", "!", "！", "?", "？", ":", "：")


def asks_how(question: str) -> bool:
    """Whether ``question`` asks how to do something (English or Japanese wording)."""
    return any(pattern.search(question.strip()) for pattern in _HOW)


def procedure(text: str, lang: Lang) -> list[str]:
    """The numbered procedure in ``text``: its steps, numbered 1, 2, 3 ... in order, each with
    the lines that continue it (a PDF breaks a step's sentence over lines). Empty when ``text``
    holds no such run of at least two steps from 1."""
    return _procedure(text, lang)[0]


def _procedure(text: str, lang: Lang) -> tuple[list[str], str]:
    """:func:`procedure`'s steps and the lines of ``text`` after the last one."""
    steps: list[str] = []
    end = 0
    lines = text.splitlines()
    for n, line in enumerate(lines):
        stripped = line.strip()
        found = _STEP.match(stripped)
        if found and int(found.group(1)) == len(steps) + 1:
            steps.append(stripped)
            end = n + 1
        elif stripped and steps and not found and not steps[-1].endswith(_ENDS):
            # An unfinished step goes on on the next line; a line after a finished one (a
            # note, the text after the procedure) is not part of it.
            steps[-1] += sentence_joiner(lang) + stripped
            end = n + 1
    if len(steps) < 2:
        return [], ""
    return steps, "\n".join(lines[end:])


def procedure_answer(
    question: str,
    terms: list[str],
    passages: list[ScoredChunk],
    encoder: SparseEncoder,
    document_chunks: Callable[[str], list[ScoredChunk]] | None = None,
    lang: Lang | None = None,
) -> tuple[str, list[ScoredChunk]] | None:
    """The answer to show for ``question``, or ``None`` to keep the composed one: for a
    question asking how to do something, when one of ``passages`` (the best few) from the
    best passage's document holds a numbered procedure that holds some of the question's terms
    (in its steps or headings), that procedure, whole and in order, each step on its own line
    with its citation.

    Where the search ordered the passages by term proximity (an English question), not a
    procedure whose steps and headings write fewer of the question's word pairs side by side
    than the best passage does. Of several, the one holding most of the question's terms; then
    the one whose headings are most about the question ("Replacing a toner cartridge" over
    "Replacing the waste toner box" for "How do I replace the toner?"); then the better ranked.
    Not a procedure whose section's text after the steps holds more of the question's terms
    than the steps: that text answers what the steps do not do.
    Only the best passage's document: another's procedure that shares a word ("PIN" in a
    secure-print procedure, asked for the service mode's PIN, which the best passage gives) is
    about something else. With ``lang``, the question's language, the best passage in it
    stands first where the best passage is in the other language and the one in the question's
    language has as many of the question's terms, and some, in its section's headings (the
    other language's procedure when it has none). And only a section whose headings hold as
    many of the question's terms as the best passage's do, or the best passage itself: asked
    how to save a scan to a shared folder, the best passage is the folder's section, which says
    how without numbered steps, and the scan to email procedure beside it shares "scan" and does
    something else.

    Dropping, from every answer, the other passages' sentences that add no question term and
    the other language's passages was measured too, and not adopted: it cut the answers citing
    an expected document by 0.03-0.07, the right passage being often the second one cited
    (docs/experiments.md, "Answer shape").

    ``document_chunks`` (the store's chunks of a document, in order): each passage is read as
    its whole section (:func:`whole_section`), so that a procedure that chunking cut is
    quoted from its first step to its last.
    """
    qterms = set(terms)
    if not qterms or not asks_how(question):
        return None

    def about(passage: ScoredChunk) -> int:  # question terms its section's headings hold
        headings = _heading_terms(encoder, passage)
        return len(qterms & (headings - set(encoder.terms(passage.chunk.title))))

    leads = [passages[0]]
    own = next((p for p in passages if p.chunk.lang == lang), None) if lang else None
    if own is not None and own is not passages[0] and about(own) >= max(1, about(passages[0])):
        # Asked in English, the Japanese guide's "Wi-Fi につなぐ" first and the English guide's
        # "Connecting to Wi-Fi" second: the procedure in the question's language, where a
        # passage in it is as much about the question by its section's headings (not by the
        # document's title: 「TeamLedger の画面を英語表示に…」 is not the CSV import's steps).
        leads.insert(0, own)
    for lead in leads:
        found = _procedure_from(lead, terms, passages, encoder, document_chunks)
        if found is not None:
            return found
    return None


def _procedure_from(
    lead: ScoredChunk,
    terms: list[str],
    passages: list[ScoredChunk],
    encoder: SparseEncoder,
    document_chunks: Callable[[str], list[ScoredChunk]] | None,
) -> tuple[str, list[ScoredChunk]] | None:
    """:func:`procedure_answer` from ``lead``'s document (``lead`` the passage it answers
    from, one of ``passages``)."""
    qterms = set(terms)
    # Where the search ordered by proximity: the question's word pairs the lead passage writes
    # side by side. A procedure that writes fewer of them does something else ("How do I turn
    # on 2-sided printing?": the power switch's steps, under "Turning the machine on and off").
    wanted = set(pairs(terms)) if "proximity" in lead.signals else set()

    def phrased(*texts: str) -> int:
        return len(wanted & set().union(*(adjacent(encoder.terms(t)) for t in texts)))

    least = phrased(*fields(lead.chunk)) if wanted else 0
    first = lead.chunk.document_id
    asked = len(qterms & _heading_terms(encoder, lead))
    # One read of the document (1-2 ms for a 90-chunk manual): a passage without a step may
    # be the introduction of a section whose steps the next chunk holds.
    siblings = document_chunks(first) if document_chunks is not None else []
    found = []
    for rank, hit in enumerate(passages):
        if hit.chunk.document_id != first:
            continue  # another document's procedure that shares a word is another subject
        passage = whole_section(hit, siblings)
        steps, rest = _procedure(passage.chunk.text, passage.chunk.lang)
        if not steps or find_instructions(passage.chunk.text):
            continue
        said = set(encoder.terms(" ".join(steps)))
        if len(qterms & set(encoder.terms(rest))) > len(qterms & said):
            # The text after the steps says more of what was asked than they do ("How do I
            # recall a submitted report?": the section "Submitting and recalling a report"
            # numbers the submitting, then says how to recall): the composed answer.
            continue
        heading = _heading_terms(encoder, passage)
        covered = len(qterms & (said | heading)) / len(qterms)
        on_topic = len(qterms & heading) / len(heading) if heading else 0.0
        beside = hit is not lead and len(qterms & heading) < asked  # on something else
        apart = bool(wanted) and phrased(" ".join(steps), *fields(passage.chunk)[1:]) < least
        if covered > 0 and not beside and not apart:
            found.append(((covered, on_topic, -rank), steps, passage))
    if not found:
        return None
    _, steps, passage = max(found, key=lambda item: item[0])
    lines = [quote(step, [1], passage.chunk.lang) for step in steps[:MAX_STEPS]]
    return "\n".join(lines), [passage]


def _heading_terms(encoder: SparseEncoder, passage: ScoredChunk) -> set[str]:
    """The terms of the headings over ``passage``'s section."""
    return set(encoder.terms(" ".join(passage.chunk.location.heading_path)))


def whole_section(passage: ScoredChunk, siblings: Sequence[ScoredChunk]) -> ScoredChunk:
    """``passage`` holding the text of its whole section: the run of consecutive chunks of its
    document (``siblings``, in chunk order) at the same place, of the same kind, access groups
    and version, joined where their offsets in the document overlap. The passage itself when it
    is the section's only chunk, or when the chunks' texts do not join (the offsets are off)."""
    here = passage.chunk
    mine = (here.location, here.kind, here.groups, here.doc_hash, here.version)

    def same(c: ScoredChunk) -> bool:
        o = c.chunk
        return (o.location, o.kind, o.groups, o.doc_hash, o.version) == mine

    at = next((i for i, c in enumerate(siblings) if c.chunk.point_id == here.point_id), None)
    if at is None:
        return passage

    def joins(a: int, b: int) -> bool:  # consecutive chunks of one section
        consecutive = siblings[b].chunk.index == siblings[a].chunk.index + 1
        return consecutive and same(siblings[a]) and same(siblings[b])

    lo, hi = at, at
    while lo > 0 and joins(lo - 1, lo):
        lo -= 1
    while hi + 1 < len(siblings) and joins(hi, hi + 1):
        hi += 1
    if lo == hi:
        return passage
    run = [c.chunk for c in siblings[lo : hi + 1]]
    text, end = run[0].text, run[0].end
    for c in run[1:]:
        if c.start >= end:  # the splitter trimmed the whitespace between them
            text += _between(c.start - end, c.text) + c.text
        elif c.end > end and text.endswith(c.text[: end - c.start]):
            text += c.text[end - c.start :]
        elif c.end > end:
            return passage  # the offsets do not say how the texts join
        end = max(end, c.end)
    whole = replace(here, text=text, start=run[0].start, end=end)
    return replace(passage, chunk=whole)


def _between(gap: int, after: str) -> str:
    """What stood in a gap of ``gap`` characters the splitter trimmed before the text
    ``after``: nothing, a line break (before a step, or more than one character), a space."""
    if gap == 0:
        return ""
    return "\n" if gap > 1 or _STEP.match(after.partition("\n")[0]) else " "
