"""The extractive answer: which sentences of which passages are quoted, each cited.

Units are a text passage's sentences, a Q&A entry's whole answer and a sheet's whole row; the
ones that hold most of the question's terms are quoted in reading order, each followed by the
``[n]`` of the passage it comes from (:func:`compose_extractive`). Nothing is written that a
passage does not say. What the answer's signals are and how the confidence reads them is
:mod:`retrieval.answer`; a procedure quoted whole and in order is :mod:`retrieval.shape`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from typing import NamedTuple, Protocol

from kb.retrieval.identifiers import identifiers, looked_up
from kb.retrieval.injection import find_instructions
from kb.retrieval.models import Chunk, Lang, ScoredChunk
from kb.retrieval.protocols import SparseEncoder
from kb.retrieval.text import joined, sentence_joiner, sentence_spans, split_sentences


class Restated(Protocol):
    """How many of ``text``'s terms (``skip`` aside) the texts ``said``, in the other language,
    hold, and of how many (:meth:`retrieval.sparse.BM25Encoder.restated` with its word list)."""

    def __call__(self, text: str, said: list[str], skip: Set[str]) -> tuple[int, int]: ...


def citable(passages: list[ScoredChunk], limit: int, per_document: int) -> list[ScoredChunk]:
    """The best ``limit`` passages, in order, at most ``per_document`` of them from one document
    (0: no cap). Small chunks put several pieces of one section at the top; the cap lets the
    next document be quoted and cited instead of a third piece of the same one."""
    if per_document <= 0:
        return passages[:limit]
    chosen: list[ScoredChunk] = []
    taken: dict[str, int] = {}
    for p in passages:
        if len(chosen) == limit:
            break
        doc = p.chunk.document_id
        if taken.get(doc, 0) < per_document:
            taken[doc] = taken.get(doc, 0) + 1
            chosen.append(p)
    return chosen


def _telling(chunk: Chunk, held: Callable[[str, Lang], set[str]]) -> tuple[int, str]:
    """The place and text of what a lower Q&A entry adds: the statement of its answer that
    holds the most question terms (``held``), the earliest of equals, which is its first, the
    one that answers, where none holds one (it matched on its question). A question in an
    answer is a related entry's ("【関連するＦＡＱ】 …ですか？"), not a statement."""
    text = chunk.text
    statements = [
        (o, text[s:e])
        for o, (s, e) in enumerate(sentence_spans(text))
        if not text[s:e].rstrip().endswith(("?", "？"))
    ]
    if not statements:
        return 0, text.strip()
    return max(statements, key=lambda ot: (len(held(ot[1], chunk.lang)), -ot[0]))


def compose_extractive(
    question_terms: list[str],
    passages: list[ScoredChunk],
    encoder: SparseEncoder,
    *,
    max_citations: int,
    max_sentences: int,
    confirmed: bool = False,
    per_document: int = 0,
    translations: Mapping[str, Sequence[str]] | None = None,
    lang: Lang | None = None,
    restated: Restated | None = None,
    whole_entries: bool = True,
    codes: Sequence[str] = (),
) -> tuple[str, list[ScoredChunk]]:
    """Pick what answers, in reading order, each piece tagged with its passage number.

    Units are the sentences of text passages, whole Q&A answers (a Q&A entry is matched on its
    question and answer together and is not cut, but see ``whole_entries``) and whole sheet
    rows (a record's cells are chosen together: "tax): 19800" is not dropped from "Price (JPY
    excl. tax): 19800" for holding no question term). Units from the best ``max_citations``
    passages (at most ``per_document`` from one document: :func:`citable`) are scored by the
    question terms they contain, the better passage first on ties; the best ``max_sentences``
    are kept. A passage with no chosen unit is not cited. A unit that
    reads like an instruction to a model (:mod:`retrieval.injection`, flagged on its document at
    ingestion) is never quoted: the answer would hand the document's instruction to the user.
    ``confirmed``: people confirmed the first passage answers this need (issue 22): its
    sentences are quoted first, in order, whether or not they repeat the question's words, as
    many as fit; the best unit of the next passages follows even when they fill the answer
    (one unit over ``max_sentences`` at most), so that a long confirmed section does not push
    out the passage the search cited beside it.
    A question that looks up an identifier (``codes``: those it names,
    :func:`retrieval.identifiers.named_in`; one no passage's title or headings name, unlike
    the product's model number) is answered from a passage that holds it by the units that
    hold it: the row of "E-021", not the rows around it that share "error"; other passages as
    usual ("How do I order KP-A4-2500?": the price row, and how to order), but not by a unit
    that holds other identifiers and not the looked-up one (the other guide's row of E-200,
    once E-021's row is quoted). In the answer shown, with ``restated``; the confidence reads
    the one it was fitted on.
    A unit that a better passage also holds word for word (manuals repeat their boilerplate
    from section to section) is quoted once, citing every passage that holds it.
    ``translations`` (a question term -> its translations, :meth:`retrieval.sparse.BM25Encoder.
    translations`): in a passage not in the question's ``lang``, a unit holding a term's
    translation holds the term, so the sentence that answers is quoted from a manual in the
    other language too, not the one that happens to share a product name.
    ``restated`` (for the answer shown; the confidence reads the answer without it, as it was
    fitted) keeps the answer in the question's ``lang`` where the knowledge base says it there:
    a unit in the other language (of the best passage too) is left out when the chosen units in
    ``lang`` hold its question terms and say it again: ``restated(unit, their texts, skip=the
    question's terms)`` (:meth:`retrieval.sparse.BM25Encoder.restated`) finds :data:`RESTATED`
    of its other terms in them, at least :data:`RESTATED_TERMS`; or, from a lower passage, it
    holds one question term at most (a guide's title page quoted for naming the product). A
    bilingual knowledge base states most things twice; the asker reads them once, in their
    language, and the other language is quoted for what it adds.
    ``whole_entries`` (True for the answer the confidence judges, as it was fitted): a lower
    passage's Q&A entry is quoted whole too. False (the answer shown): only the best passage's
    entry is; a lower one by the statement of its answer that holds the most question terms
    (its first, which answers, when none does: it matched on its question). The same entries
    are quoted and cited; what a lower one adds comes without its own opening hours and
    contact block, which a FAQ's entries repeat.
    :returns: the answer text and the cited passages, numbered from 1 in order.
    """
    passages = citable(passages, max_citations, per_document)
    if not passages:
        return "", []
    terms = set(question_terms)
    other = {t: set(v) for t, v in (translations or {}).items() if t in terms}

    def held(unit: str, chunk_lang: Lang) -> set[str]:
        found = set(encoder.terms(unit))
        hits = terms & found
        if other and lang is not None and chunk_lang != lang:
            hits |= {t for t, words in other.items() if not words.isdisjoint(found)}
        return hits

    scored: list[_Unit] = []
    holders: dict[str, list[int]] = {}
    """A unit's words (case and spacing aside) -> the ranks of the passages holding it."""

    def add(score: float, rank: int, order: int, unit: str, hits: set[str]) -> None:
        ranks = holders.setdefault(" ".join(unit.split()).casefold(), [])
        if not ranks:
            scored.append(_Unit(score, rank, order, unit, ranks, hits, passages[rank].chunk.lang))
        if rank not in ranks:
            ranks.append(rank)  # quoted once, from the better passage

    for rank, passage in enumerate(passages):
        chunk = passage.chunk
        if chunk.kind == "qa" or chunk.location.row is not None:  # an entry, a sheet's record
            hits = held(chunk.embed_text, chunk.lang)
            if find_instructions(chunk.text):
                continue
            if hits or rank == 0:
                # The whole answer, kept together (a Q&A answer is never cut); shown from a
                # lower entry, the statement of it that says most of what was asked.
                whole = whole_entries or rank == 0 or chunk.location.row is not None
                order, unit = (0, chunk.text.strip()) if whole else _telling(chunk, held)
                add(len(hits) + 0.5 - 0.3 * rank, rank, order, unit, hits)
            continue
        text = chunk.text
        for order, (s, e) in enumerate(sentence_spans(text)):
            sentence = text[s:e]
            hits = held(sentence, chunk.lang)
            if confirmed and rank == 0 and not find_instructions(sentence):
                add(1000.0 - order, rank, order, sentence, hits)
                continue
            if not hits or find_instructions(sentence):
                continue
            # Term hits dominate; earlier passages and earlier sentences break ties.
            add(len(hits) - 0.3 * rank - 0.01 * order, rank, order, sentence, hits)
    if restated is not None and codes:  # "E-021": its row, not the table around it
        titles = [set(identifiers(f"{p.chunk.title} {p.chunk.location.label()}")) for p in passages]
        wanted = set(looked_up(codes, titles))
        written = {id(u): set(identifiers(u.text)) for u in scored}
        rows = {i for i, codes_of in written.items() if codes_of & wanted}
        tables = {u.rank for u in scored if id(u) in rows}  # a passage holding the code
        scored = [
            u
            for u in scored
            if id(u) in rows
            # nor, from other passages, the rows of other codes (the other guide's E-200)
            or (u.rank not in tables and not (rows and written[id(u)]))
        ]
    ranked = sorted(scored, key=lambda u: -u.score)
    best = ranked[:max_sentences]
    if confirmed:  # what people confirmed, from its start, and what the search's next add
        said = [u for u in best if u.rank == 0]
        rest = [u for u in ranked if u.rank != 0]
        best = [*said, *rest[: max(1, max_sentences - len(said))]]
    if restated is not None and lang is not None:
        asked = terms.union(*other.values())  # every passage quoted shares these
        best = _in_one_language(best, lang, lambda u, said: restated(u, said, skip=asked))
    if not best:
        return "", []
    best.sort(key=lambda u: (u.rank, u.order))
    cited_ranks = sorted({rank for u in best for rank in u.ranks})
    number = {rank: i + 1 for i, rank in enumerate(cited_ranks)}
    lang = best[0].lang  # the first sentence quoted's
    parts = [quote(u.text, [number[rank] for rank in u.ranks], lang) for u in best]
    return joined(parts, lang), [passages[r] for r in cited_ranks]


RESTATED = 0.35
"""Share of a unit's words (the question's aside) that the answer in the question's language
already holds, as the same words or their translations, from which the unit is taken to say it
again in the other language. On the sample knowledge base's answers, a sentence or row and its
translation in the other guide or FAQ row hold 0.35-1.0 (the word list misses some: a few hold
0.2-0.33 and are kept); sentences on other things that share a menu or a product's name,
0-0.33 (docs/experiments.md, "One language in an answer")."""
RESTATED_TERMS = 2
"""...and at least this many of them."""


class _Unit(NamedTuple):
    """A quotable unit: a sentence, a Q&A entry's answer or a sheet's row."""

    score: float
    rank: int
    """Its passage's rank."""
    order: int
    """Its place in the passage."""
    text: str
    ranks: list[int]
    """The ranks of the passages holding it word for word."""
    hits: set[str]
    """The question terms it holds."""
    lang: Lang
    """Its passage's language."""


def _in_one_language(
    best: list[_Unit],
    lang: Lang,
    restated: Callable[[str, list[str]], tuple[int, int]],
) -> list[_Unit]:
    """``best`` less the units in another language than ``lang`` that the units in ``lang``
    already say, or that only pad them (:func:`compose_extractive`'s ``restated``)."""
    own = [u for u in best if u.lang == lang]
    if not own or len(own) == len(best):
        return best
    answered = set().union(*(u.hits for u in own))
    said = [u.text for u in own]

    def kept(u: _Unit) -> bool:
        if u.lang == lang or not u.hits <= answered:
            return True
        if len(u.hits) <= 1 and u.rank > 0:  # padding: a lower passage naming the product, say
            return False
        held, of = restated(u.text, said)
        return held < max(RESTATED_TERMS, RESTATED * of)

    return [u for u in best if kept(u)]


def quote(unit: str, numbers: list[int], lang: str) -> str:
    """``unit`` quoted with the markers of the passages ``numbers`` after each of its
    sentences (a Q&A answer's and a sheet row's too: every sentence the answer gives is
    checked against its citation): ``"Open the cover. [1] Pull it out. [1]"``."""
    markers = "".join(f"[{n}]" for n in numbers)
    return sentence_joiner(lang).join(f"{s} {markers}" for s in split_sentences(unit))
