"""Question memory (issue 22): questions whose answer people confirmed, as a retrieval channel.

A **pair** is a question and the passage that answered it, confirmed by the asker (a thumbs-up)
or by support staff (who linked the question to a passage or wrote a staff answer). A **gap**
is a question staff marked as not covered by the knowledge base. A new question is matched
against the confirmed ones (dense cosine of the first embedder's query vectors, and an
IDF-weighted keyword overlap); each passage that close matches point to becomes a candidate
with the probability that it answers the new question, and a close match to a gap pushes
toward escalation.

That probability is learned from the memory itself, never from the questions it is used on:
every confirmed question is matched against the others (leave one out), and a logistic model
over the match's features (similarity, keyword overlap, how it was confirmed and by how many
people, age) is fitted to "the matched passage is the one this question was confirmed with".
While the memory holds too few confirmations to fit (:data:`MIN_FIT`), a conservative prior
stands in (:data:`PRIOR`).

Safeguards live here and in :mod:`services.memory`: a passage is a candidate only for a
caller who may read it (its groups, checked again against the store), a gap only applies to a
caller who may read no more than the asker it was confirmed for, and only an **agreed** match
(one staff member, or two different askers) may lift an answer over the confidence threshold;
an unagreed one can only reorder the passages. No question text leaves this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from kb.retrieval.models import AccessFilter
from kb.retrieval.numeric import cosines, unit_rows

Kind = Literal["pair", "gap"]

FLOOR = 0.88
"""Cosine under which a confirmed question is not a match at all (multilingual e5 puts unrelated
questions of one domain at 0.80 to 0.88: below that a match says nothing)."""
MAX_HITS = 5
"""Candidate passages one question takes from the memory."""
MIN_FIT = 30
"""Leave-one-out matches (with both outcomes at least :data:`MIN_CLASS` times) needed to fit
the memory's own model instead of :data:`PRIOR`."""
MIN_CLASS = 5
CALIBRATION_SAMPLE = 2000
"""Confirmed questions the leave-one-out fit reads at most (a fixed-seed sample)."""
RIDGE = 1.0
"""L2 penalty of the logistic fits (on every weight but the bias)."""

PAIR_FEATURES = ("bias", "sim", "kw", "askers", "staff", "agreed", "age", "nearest", "lead")
GAP_FEATURES = ("bias", "sim", "kw", "staff", "nearest", "lead")

PRIOR: dict[str, tuple[float, ...]] = {
    # A new memory: a match lifts an answer only when it is nearly the same question
    # (cosine 0.95 gives 0.5 for an agreed match) and its words agree.
    "pair": (-58.0, 60.0, 1.0, 0.2, 0.5, 0.5, 0.0, 0.0, 0.0),
    "gap": (-58.5, 60.0, 1.0, 0.5, 0.0, 0.0),
}


PRIOR_GAP_RATE = 0.1
"""The gap rate :data:`PRIOR`'s gap weights stand for: a new memory reads a likely gap match as
strong evidence (a match at p 0.87, a nearly identical question staff marked not covered,
takes a confidence of 0.9 to 0.13)."""


@dataclass(frozen=True, slots=True)
class MemoryEntry:
    """One confirmed question (its vector and terms, never its text)."""

    id: int
    kind: Kind
    vector: Sequence[float]
    terms: frozenset[str]
    document_id: str | None = None
    chunk_id: str | None = None
    text_hash: str | None = None
    groups: tuple[str, ...] = ()
    """The passage's access groups (a pair)."""
    asker_groups: tuple[str, ...] = ()
    """The groups of the person who asked: a gap holds only for callers who read no more."""
    confirmer: str = ""
    """Who confirmed it: the asker (a thumbs-up) or a staff member."""
    staff: bool = False
    age_days: float = 0.0
    query_id: str | None = None


@dataclass(slots=True)
class Hit:
    """A passage close confirmed questions point to."""

    document_id: str
    chunk_id: str
    text_hash: str | None
    sim: float
    kw: float
    askers: int
    """Different askers who confirmed it with a thumbs-up."""
    staff: bool
    age_days: float
    entry_ids: list[int]
    groups: tuple[str, ...]
    p: float = 0.0
    """Probability that this passage answers the question (:class:`MemoryModel`), from the
    match alone: what the search found is the confidence's evidence, and the two are combined
    (:func:`retrieval.recall.apply_recall`)."""
    base: float | None = None
    """The pair model's base rate (:attr:`MemoryModel.pair_rate`): ``p`` above it is evidence
    that the passage answers. ``None`` for :data:`PRIOR`, which is no likelihood: an agreed
    match lifts the confidence to its ``p``."""
    moved_to: str | None = None
    """The passage's point now (its document was re-ingested with the passage unchanged)."""
    stale: bool = False
    """The passage is gone (its document changed it or was deleted)."""
    lead: float = 0.0
    """How far this passage's closest confirmed question is ahead of the closest one naming
    another passage the caller may read (negative: behind it; alone: ahead of :data:`FLOOR`).
    Questions of one domain sit at similar cosines whether they ask the same thing or not
    (Japanese ones at 0.88-0.92), but the nearest of them is far more often the same need."""

    @property
    def agreed(self) -> bool:
        """One staff member or two different askers confirmed it: it may lift an answer."""
        return self.staff or self.askers >= 2

    def features(self) -> list[float]:
        return [
            1.0,
            self.sim,
            self.kw,
            math.log1p(self.askers),
            float(self.staff),
            float(self.agreed),
            math.log1p(max(self.age_days, 0.0)) / 10.0,
            *_lead_features(self.lead),
        ]


def _lead_features(lead: float) -> tuple[float, float]:
    """A match's ``nearest`` and ``lead`` features: whether it is the closest entry of its kind,
    and by how much it leads (or trails) the closest other one, within +-0.1."""
    return float(lead > 0), 10.0 * max(-0.1, min(0.1, lead))


@dataclass(slots=True)
class GapHit:
    """The closest confirmed gap."""

    sim: float
    kw: float
    staff: bool
    entry_ids: list[int]
    p: float = 0.0
    """Probability that the question is not covered either."""
    base: float = PRIOR_GAP_RATE
    """The model's base rate (:attr:`MemoryModel.gap_rate`): ``p`` above it is evidence of a
    gap, ``p`` at it says nothing."""
    lead: float = 0.0
    """How far the gap is ahead of the closest confirmed pair the caller may read (negative:
    behind it; no pair: ahead of :data:`FLOOR`). A question closer to a confirmed answer than
    to a confirmed gap is far more often covered: on emanual_tv, gaps behind a pair lowered the
    confidence of 13 questions whose first passage was right and of 3 out of scope."""

    def features(self) -> list[float]:
        return [1.0, self.sim, self.kw, float(self.staff), *_lead_features(self.lead)]


@dataclass(slots=True)
class Recall:
    """What the memory says about one question."""

    hits: list[Hit] = field(default_factory=list)
    gap: GapHit | None = None
    lifted: str | None = None
    """The chunk whose agreed match lifted the confidence (:func:`apply_recall`)."""
    gap_applied: bool = False

    def to_log(self) -> list[dict[str, Any]]:
        """Entry ids and probabilities, for the query log (no text)."""
        out: list[dict[str, Any]] = [
            {
                "kind": "pair",
                "entries": h.entry_ids,
                "chunk_id": h.chunk_id,
                "document_id": h.document_id,
                "sim": round(h.sim, 4),
                "lead": round(h.lead, 4),
                "p": round(h.p, 4),
                "base": None if h.base is None else round(h.base, 4),
                "agreed": h.agreed,
                "lifted": h.chunk_id == self.lifted,
                "moved_to": h.moved_to,
                "stale": h.stale,
            }
            for h in self.hits
        ]
        if self.gap is not None:
            out.append(
                {
                    "kind": "gap",
                    "entries": self.gap.entry_ids,
                    "sim": round(self.gap.sim, 4),
                    "p": round(self.gap.p, 4),
                    "lead": round(self.gap.lead, 4),
                    "base": round(self.gap.base, 4),
                    "applied": self.gap_applied,
                }
            )
        return out


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


@dataclass(frozen=True, slots=True)
class MemoryModel:
    """Logistic weights for pair and gap matches; ``fitted`` says whether they came from the
    memory (leave one out) or are :data:`PRIOR`."""

    pair: tuple[float, ...] = PRIOR["pair"]
    gap: tuple[float, ...] = PRIOR["gap"]
    fitted: bool = False
    samples: int = 0
    pair_rate: float | None = None
    """Share of right matches among those the pair model was fitted on (each staff-confirmed
    question matched against the others): what a match of average evidence says. ``None``
    for :data:`PRIOR`."""
    gap_rate: float = PRIOR_GAP_RATE
    """Share of gaps among the confirmed questions the gap model was fitted on (each matched
    against the others, those with a gap match): what a gap match of average evidence says.
    :func:`retrieval.recall.apply_recall` lowers a confidence by how much a match's
    probability exceeds it."""

    def p_pair(self, hit: Hit) -> float:
        return _sigmoid(sum(w * x for w, x in zip(self.pair, hit.features(), strict=True)))

    def p_gap(self, hit: GapHit) -> float:
        return _sigmoid(sum(w * x for w, x in zip(self.gap, hit.features(), strict=True)))


def fit_logistic(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> tuple[float, ...]:
    """Ridge logistic regression by Newton's method (deterministic; the first column is the
    unpenalised bias), returned as weights over the raw features.

    The penalty acts on standardised features. A feature that moves over a narrow range (a
    cosine between 0.88 and 1, a fused score of a few hundredths) needs a large raw weight to
    say anything, and a penalty on raw weights silenced it whatever it predicted: the match
    model gave an agreed match about the same probability at cosine 0.90 and 0.98."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    mean[0], scale[0] = 0.0, 1.0
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = (x - mean) / scale  # the bias column stays 1
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], RIDGE)
    penalty[0] = 1e-6
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -50, 50)))
        grad = z.T @ (p - y) + penalty * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    raw = w / scale
    raw[0] = w[0] - float(np.dot(w[1:], mean[1:] / scale[1:]))
    # To ten significant digits: the same on every CPU (numpy's BLAS picks its kernels by
    # CPU, and the fit's last digits differ between them: retrieval.numeric).
    return tuple(float(f"{v:.10g}") for v in raw)


class QuestionMemory:
    """The confirmed questions of one embedder, ready to match (build once, read by many)."""

    def __init__(
        self,
        entries: Sequence[MemoryEntry],
        *,
        fit: bool = True,
        model: MemoryModel | None = None,
    ) -> None:
        """:param fit: learn :attr:`model` from ``entries`` (leave one out; the slow part, it
            grows with the square of the entries); otherwise :data:`PRIOR`.
        :param model: weights to match with instead (no fit): those of an earlier memory while
            this one's are learned in the background (:mod:`services.memory`)."""
        self.entries = list(entries)
        dims = {len(e.vector) for e in self.entries}
        if len(dims) > 1:
            raise ValueError(f"memory entries of different dimensions: {sorted(dims)}")
        self.matrix = unit_rows([e.vector for e in self.entries])
        df: dict[str, int] = {}
        for e in self.entries:
            for t in e.terms:
                df[t] = df.get(t, 0) + 1
        n = len(self.entries)
        self._idf = {t: math.log(1 + n / c) for t, c in df.items()}
        self._default_idf = math.log(1 + max(n, 1))
        if model is not None:
            self.model = model
        else:
            self.model = self._fit() if fit else MemoryModel()
        self.ranker: Any = None
        """The ranker learned from these confirmed questions (:class:`retrieval.domain.
        DomainRanker`; set by :mod:`services.domain`), or ``None``: the search's own order."""
        self.learning: Any = None
        """What the last fit of that ranker found (:class:`retrieval.domain.Learning`)."""

    def __len__(self) -> int:
        return len(self.entries)

    # -- matching ------------------------------------------------------------------------

    def match(
        self,
        vector: Sequence[float],
        terms: Iterable[str],
        acl: AccessFilter,
        *,
        limit: int = MAX_HITS,
        exclude: int | None = None,
    ) -> Recall:
        """Passages the confirmed questions close to ``vector`` point to (those ``acl`` may
        read), best first, and the closest gap that applies to ``acl``.

        :param exclude: leave this entry and the others of its question out (leave one out).
        """
        if not self.entries or len(vector) != self.matrix.shape[1]:
            return Recall()
        sims = cosines(self.matrix, vector)
        order = np.argsort(-sims, kind="stable")
        qterms = frozenset(terms)
        left_out = self.entries[exclude].query_id if exclude is not None else None
        hits: dict[str, Hit] = {}
        askers: dict[str, set[str]] = {}
        gap: GapHit | None = None
        for i in order:
            sim = float(sims[i])
            if sim < FLOOR:
                break
            e = self.entries[i]
            if exclude is not None and (i == exclude or (left_out and e.query_id == left_out)):
                continue
            if e.kind == "gap":
                # A gap holds for callers who may read no more than the asker it was marked for.
                if set(acl.groups) <= set(e.asker_groups):
                    if gap is None:
                        gap = GapHit(sim, self.overlap(qterms, e.terms), e.staff, [e.id])
                    else:
                        gap.entry_ids.append(e.id)
                        gap.staff = gap.staff or e.staff
                continue
            if e.chunk_id is None or e.document_id is None or not acl.permits(e.groups):
                continue
            hit = hits.get(e.chunk_id)
            if hit is None:
                if len(hits) >= limit:
                    continue
                hit = hits[e.chunk_id] = Hit(
                    document_id=e.document_id,
                    chunk_id=e.chunk_id,
                    text_hash=e.text_hash,
                    sim=sim,
                    kw=self.overlap(qterms, e.terms),
                    askers=0,
                    staff=False,
                    age_days=e.age_days,
                    entry_ids=[],
                    groups=e.groups,
                )
                askers[e.chunk_id] = set()
            hit.entry_ids.append(e.id)
            hit.age_days = min(hit.age_days, e.age_days)
            if e.staff:
                hit.staff = True
            elif e.confirmer:
                askers[e.chunk_id].add(e.confirmer)
        sims_of = sorted((h.sim for h in hits.values()), reverse=True) + [FLOOR]
        for chunk_id, hit in hits.items():
            # The closest other passage: the second when this one is first (a tie leads by 0).
            hit.lead = hit.sim - (sims_of[1] if hit.sim == sims_of[0] else sims_of[0])
            hit.askers = len(askers[chunk_id])
            hit.p, hit.base = self.model.p_pair(hit), self.model.pair_rate
        if gap is not None:
            gap.lead = gap.sim - sims_of[0]  # the closest pair found (the first is kept)
            gap.p, gap.base = self.model.p_gap(gap), self.model.gap_rate
        return Recall(sorted(hits.values(), key=lambda h: -h.p), gap)

    def overlap(self, a: frozenset[str], b: frozenset[str]) -> float:
        """IDF-weighted Jaccard of two term sets (rare shared words count most)."""
        union = a | b
        if not union:
            return 0.0
        weight = self._idf.get
        # fsum: exact, whatever order the sets' string hashing gives.
        inter = math.fsum(weight(t, self._default_idf) for t in a & b)
        return inter / math.fsum(weight(t, self._default_idf) for t in union)

    # -- learning from itself ------------------------------------------------------------

    def _fit(self) -> MemoryModel:
        """Fit :class:`MemoryModel` by matching each confirmed question against the others."""
        # Pairs: only staff-confirmed questions ask. Their passage was chosen by a person, not
        # by the search (an asker's thumbs-up confirms the passage the search put first). The
        # model reads the match alone, not where the search ranked the passage: staff confirm
        # the questions the search failed, so a fit on them learned that the search's first
        # passage is seldom right, and an agreed match naming it read p 0.2-0.5 where it was
        # right 0.6-0.8 of the time. What the search found is the confidence's part.
        # Gaps: every question asks, so that the share of gaps is the one new questions
        # meet, not the one of hard questions.
        everyone = list(range(len(self.entries)))
        staff = [i for i in everyone if self.entries[i].staff]
        if len(staff) < 3:
            return MemoryModel()
        self.model = MemoryModel()  # features only; weights come next
        pair_x: list[list[float]] = []
        pair_y: list[float] = []
        for i in _sample(staff):
            e = self.entries[i]
            for hit in self._left_out(i).hits[:3]:
                pair_x.append(hit.features())
                pair_y.append(float(e.kind == "pair" and hit.document_id == e.document_id))
        gap_x: list[list[float]] = []
        gap_y: list[float] = []
        for i in _sample(everyone):
            gap_hit = self._left_out(i).gap
            if gap_hit is not None:
                gap_x.append(gap_hit.features())
                gap_y.append(float(self.entries[i].kind == "gap"))
        pair = _fit_or(pair_x, pair_y, PRIOR["pair"])
        gap = _fit_or(gap_x, gap_y, PRIOR["gap"])
        fitted = pair is not PRIOR["pair"] or gap is not PRIOR["gap"]
        rate = sum(gap_y) / len(gap_y) if gap is not PRIOR["gap"] else PRIOR_GAP_RATE
        pairs = sum(pair_y) / len(pair_y) if pair is not PRIOR["pair"] else None
        return MemoryModel(
            pair=pair, gap=gap, fitted=fitted, samples=len(pair_y) + len(gap_y),
            pair_rate=pairs, gap_rate=rate,
        )  # fmt: skip

    def _left_out(self, i: int) -> Recall:
        """Entry ``i`` matched against the others, as its asker would have been (what they may
        read, the gaps that hold for them)."""
        e = self.entries[i]
        acl = AccessFilter(tuple(e.asker_groups))
        return self.match(e.vector, e.terms, acl, exclude=i)


def _sample(indices: list[int]) -> list[int]:
    """At most :data:`CALIBRATION_SAMPLE` of ``indices`` (fixed seed), in order."""
    if len(indices) <= CALIBRATION_SAMPLE:
        return indices
    rng = np.random.default_rng(0)
    return sorted(int(i) for i in rng.choice(indices, CALIBRATION_SAMPLE, replace=False))


def _fit_or(x: list[list[float]], y: list[float], prior: tuple[float, ...]) -> tuple[float, ...]:
    positives = sum(y)
    if len(y) < MIN_FIT or positives < MIN_CLASS or len(y) - positives < MIN_CLASS:
        return prior
    return fit_logistic(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
