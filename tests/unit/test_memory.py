"""The question memory's matching and safeguards (retrieval/memory.py), on synthetic vectors."""

from __future__ import annotations

import numpy as np
import pytest

from kb.retrieval.gate import Gate
from kb.retrieval.memory import (
    FLOOR,
    PRIOR_GAP_RATE,
    MemoryEntry,
    MemoryModel,
    QuestionMemory,
    Recall,
    fit_logistic,
)
from kb.retrieval.models import AccessFilter, Chunk, Location, ScoredChunk
from kb.retrieval.recall import (
    apply_recall,
    lowered_by_gap,
    raised_by_pair,
    recall_for,
    with_memory,
)

EVERYONE = AccessFilter()


def vec(*xs: float) -> list[float]:
    v = np.asarray(xs, dtype=float)
    return list(v / np.linalg.norm(v))


def pair(i: int, v: list[float], chunk: str, **kw: object) -> MemoryEntry:
    fields: dict[str, object] = {
        "id": i,
        "kind": "pair",
        "vector": v,
        "terms": frozenset({"printer", "toner"}),
        "document_id": f"doc-{chunk}",
        "chunk_id": chunk,
        "confirmer": f"user-{i}",
        "query_id": f"q{i}",
    }
    fields.update(kw)
    return MemoryEntry(**fields)  # type: ignore[arg-type]


Q = vec(1, 0.02, 0)
TERMS = frozenset({"printer", "toner"})


def test_one_askers_thumbs_up_is_a_candidate_but_not_agreed():
    memory = QuestionMemory([pair(1, vec(1, 0, 0), "a")], fit=False)
    recall = memory.match(Q, TERMS, EVERYONE)
    assert [h.chunk_id for h in recall.hits] == ["a"]
    hit = recall.hits[0]
    assert hit.askers == 1 and not hit.staff and not hit.agreed
    assert hit.sim > 0.99


def test_two_askers_or_one_staff_member_agree():
    two = QuestionMemory([pair(1, vec(1, 0, 0), "a"), pair(2, vec(1, 0.01, 0), "a")], fit=False)
    assert two.match(Q, TERMS, EVERYONE).hits[0].agreed
    same_person = QuestionMemory(
        [pair(1, vec(1, 0, 0), "a"), pair(2, vec(1, 0.01, 0), "a", confirmer="user-1")], fit=False
    )
    assert not same_person.match(Q, TERMS, EVERYONE).hits[0].agreed
    staff = QuestionMemory([pair(1, vec(1, 0, 0), "a", staff=True)], fit=False)
    assert staff.match(Q, TERMS, EVERYONE).hits[0].agreed


def test_staff_confirmation_outweighs_an_askers_thumbs_up():
    memory = QuestionMemory(
        [pair(1, vec(1, 0, 0), "asker"), pair(2, vec(1, 0, 0), "staff", staff=True)], fit=False
    )
    hits = memory.match(Q, TERMS, EVERYONE).hits
    assert hits[0].chunk_id == "staff" and hits[0].p > hits[1].p


def test_a_pair_never_surfaces_a_passage_the_caller_may_not_read():
    memory = QuestionMemory([pair(1, vec(1, 0, 0), "hr-only", groups=("hr",))], fit=False)
    assert memory.match(Q, TERMS, EVERYONE).hits == []
    assert memory.match(Q, TERMS, AccessFilter(("sales",))).hits == []
    assert [h.chunk_id for h in memory.match(Q, TERMS, AccessFilter(("hr",))).hits] == ["hr-only"]


def test_a_gap_holds_only_for_callers_who_read_no_more_than_its_asker():
    gap = MemoryEntry(id=1, kind="gap", vector=vec(1, 0, 0), terms=TERMS, staff=True)
    memory = QuestionMemory([gap], fit=False)
    assert memory.match(Q, TERMS, EVERYONE).gap is not None
    # A member of hr may read documents the gap's asker could not: it may be covered for them.
    assert memory.match(Q, TERMS, AccessFilter(("hr",))).gap is None


def test_a_gap_behind_a_closer_confirmed_answer_trails_it():
    pair_near = vec(1, 0.02, 0)
    gap_entry = MemoryEntry(id=2, kind="gap", vector=vec(1, 0.3, 0), terms=TERMS)
    memory = QuestionMemory([pair(1, pair_near, "a"), gap_entry], fit=False)
    recall = memory.match(Q, TERMS, EVERYONE)
    assert recall.gap is not None
    assert recall.gap.lead == pytest.approx(recall.gap.sim - recall.hits[0].sim)
    assert recall.gap.lead < 0
    # A pair the caller may not read is no answer for them: the gap leads.
    hidden = QuestionMemory([pair(1, pair_near, "a", groups=("hr",)), gap_entry], fit=False)
    gap = hidden.match(Q, TERMS, EVERYONE).gap
    assert gap is not None and gap.lead == pytest.approx(gap.sim - FLOOR)


def test_the_gap_model_learns_that_a_closer_confirmed_answer_means_covered():
    """Questions of one domain sit near gaps whether they are covered or not (every question
    here has its closest gap at about 0.95); what tells them apart is whether a confirmed
    answer is closer still. The fitted gap model must hear that."""
    rng = np.random.default_rng(5)
    dim = 64

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v)

    def away(v: np.ndarray, cos: float) -> np.ndarray:
        o = rng.normal(size=dim)
        o = unit(o - (o @ v) * v)
        return unit(v + np.sqrt(1 / cos**2 - 1) * o)

    entries: list[MemoryEntry] = []
    covered: list[np.ndarray] = []
    gaps: list[np.ndarray] = []
    for c in range(12):  # covered topics: three staff answers, a gap at 0.95 beside them
        base = unit(rng.normal(size=dim))
        covered.append(base)
        for k in range(3):
            entries.append(
                pair(len(entries), list(unit(base + 0.015 * rng.normal(size=dim))), f"c{c}",
                     staff=True, query_id=f"c{c}-{k}")
            )  # fmt: skip
        entries.append(MemoryEntry(len(entries), "gap", list(away(base, 0.95)), TERMS, staff=True))
    for _ in range(12):  # topics not covered: two gaps at 0.95 from each other
        base = unit(rng.normal(size=dim))
        first = away(base, 0.975)
        gaps.append(first)
        entries.append(MemoryEntry(len(entries), "gap", list(first), TERMS, staff=True))
        entries.append(MemoryEntry(len(entries), "gap", list(away(first, 0.95)), TERMS, staff=True))
    memory = QuestionMemory(entries)
    assert memory.model.fitted

    def p_gap(v: np.ndarray) -> float:
        gap = memory.match(list(v), TERMS, EVERYONE).gap
        assert gap is not None and 0.93 < gap.sim < 0.99
        return gap.p

    near_answer = [p_gap(unit(b + 0.01 * rng.normal(size=dim))) for b in covered]
    near_gap = [p_gap(away(g, 0.95)) for g in gaps]
    assert max(near_answer) < 0.3 and min(near_gap) > 0.7
    # Its base rate: the share of gaps among the entries that met a gap (each against the
    # others): the 36 answers meet the gap beside them, the 24 uncovered gaps each other; the
    # 12 gaps beside an answer meet no other gap.
    assert memory.model.gap_rate == pytest.approx(24 / 60)


def test_the_closest_confirmed_question_leads_and_the_others_trail():
    close, near = vec(1, 0.02, 0.01), vec(1, 0.3, 0)
    memory = QuestionMemory([pair(1, close, "a"), pair(2, near, "b")], fit=False)
    hits = {h.chunk_id: h for h in memory.match(Q, TERMS, EVERYONE).hits}
    gap = hits["a"].sim - hits["b"].sim
    assert gap > 0
    assert hits["a"].lead == pytest.approx(gap) and hits["b"].lead == pytest.approx(-gap)
    assert hits["a"].features()[-2:] == [1.0, pytest.approx(10 * min(gap, 0.1))]
    assert hits["b"].features()[-2] == 0.0
    logged = {h["chunk_id"]: h["lead"] for h in memory.match(Q, TERMS, EVERYONE).to_log()}
    assert logged == {"a": round(gap, 4), "b": round(-gap, 4)}
    # Alone, a match leads by how far it is above the floor of matching at all.
    alone = QuestionMemory([pair(1, near, "b")], fit=False).match(Q, TERMS, EVERYONE).hits[0]
    assert alone.lead == pytest.approx(alone.sim - FLOOR)


def test_a_closer_question_the_caller_may_not_read_does_not_count_against_a_match():
    memory = QuestionMemory(
        [pair(1, vec(1, 0.02, 0), "hr-only", groups=("hr",)), pair(2, vec(1, 0.3, 0), "b")],
        fit=False,
    )
    (hit,) = memory.match(Q, TERMS, EVERYONE).hits
    assert hit.chunk_id == "b" and hit.lead == pytest.approx(hit.sim - FLOOR)


def test_far_questions_do_not_match():
    memory = QuestionMemory([pair(1, vec(0, 1, 0), "a")], fit=False)
    assert memory.match(Q, TERMS, EVERYONE).hits == []


def test_leave_one_out_excludes_the_question_itself():
    memory = QuestionMemory(
        [pair(1, vec(1, 0, 0), "a", query_id="q"), pair(2, vec(1, 0, 0), "b", query_id="q")],
        fit=False,
    )
    assert memory.match(Q, TERMS, EVERYONE, exclude=0).hits == []


class _Top:
    def __init__(self, point: str, signals: dict[str, float] | None = None) -> None:
        self.chunk = type("C", (), {"point_id": point})()
        self.signals = signals or {}


def test_only_an_agreed_match_lifts_and_a_gap_lowers():
    memory = QuestionMemory([pair(1, vec(1, 0, 0), "a")], fit=False)
    recall = memory.match(Q, TERMS, EVERYONE)
    features: dict[str, float] = {}
    assert apply_recall(0.2, recall, [_Top("a")], features) == 0.2
    assert features["memory_agreed"] == 0.0 and features["memory_p"] > 0.5

    agreed = QuestionMemory([pair(1, vec(1, 0, 0), "a", staff=True)], fit=False)
    recall = agreed.match(Q, TERMS, EVERYONE)
    lifted = apply_recall(0.2, recall, [_Top("a")], {})
    assert lifted == pytest.approx(recall.hits[0].p) and lifted > 0.9  # the prior: its p
    assert recall.lifted == "a"
    # The agreed match must name the answer's passage: another passage is not lifted.
    assert apply_recall(0.2, agreed.match(Q, TERMS, EVERYONE), [_Top("x")], {}) == 0.2

    gap = MemoryEntry(id=2, kind="gap", vector=vec(1, 0, 0), terms=TERMS, staff=True)
    recall = QuestionMemory([gap], fit=False).match(Q, TERMS, EVERYONE)
    assert apply_recall(0.9, recall, [_Top("a")], {}) < 0.1
    assert recall.gap_applied
    assert Recall().to_log() == []


def test_a_gap_match_weighs_against_what_the_search_found():
    """A likely gap lowers the confidence by its likelihood ratio against the gap model's base
    rate, not to ``1 - p``: a search that found a convincing answer keeps it against a gap
    match of middling strength; a middling answer does not; a match no likelier than the
    base rate changes nothing, and nothing is raised."""
    assert lowered_by_gap(0.94, 0.8, 0.4) == pytest.approx(0.7231, abs=1e-4)  # 0.94 * 0.2: 0.19
    assert lowered_by_gap(0.71, 0.84, 0.4) < 0.4
    assert lowered_by_gap(0.9, 0.4, 0.4) == 0.9
    assert lowered_by_gap(0.2, 0.3, 0.4) == 0.2
    assert lowered_by_gap(0.9, 1.0, 0.4) == 0.0 and lowered_by_gap(0.0, 0.9, 0.4) == 0.0
    # The order of confidences is kept: the gate still reads one scale.
    values = [lowered_by_gap(c, 0.75, 0.3) for c in (0.1, 0.5, 0.8, 0.99)]
    assert values == sorted(values)

    gap = MemoryEntry(id=2, kind="gap", vector=vec(1, 0, 0), terms=TERMS, staff=True)
    recall = QuestionMemory([gap], fit=False).match(Q, TERMS, EVERYONE)
    assert recall.gap is not None and recall.gap.base == PRIOR_GAP_RATE
    fitted = MemoryModel(fitted=True, gap_rate=0.45)
    recall = QuestionMemory([gap], model=fitted).match(Q, TERMS, EVERYONE)
    assert recall.gap is not None and recall.gap.base == 0.45
    p = recall.gap.p
    assert apply_recall(0.9, recall, [_Top("a")], {}) == pytest.approx(lowered_by_gap(0.9, p, 0.45))
    assert recall.gap_applied
    # A memory mostly of gaps: a match no likelier than its base rate is not applied at all.
    mostly = QuestionMemory([gap], model=MemoryModel(fitted=True, gap_rate=0.999))
    recall = mostly.match(Q, TERMS, EVERYONE)
    assert apply_recall(0.9, recall, [_Top("a")], {}) == 0.9 and not recall.gap_applied


def test_the_model_is_fitted_from_the_memory_itself():
    rng = np.random.default_rng(1)
    entries = []
    for i in range(80):
        topic = i % 8
        # Neighbouring topics share a direction: some close matches are another topic's.
        base = np.full(16, 0.0)
        base[0] = 2.0
        base[1 + topic] = 1.0
        v = base + rng.normal(0, 0.25, 16)
        entries.append(
            pair(
                i,
                list(v / np.linalg.norm(v)),
                f"c{topic}",
                terms=frozenset({f"t{topic}"}),
                staff=i % 2 == 0,
            )
        )
    memory = QuestionMemory(entries)
    assert memory.model.fitted and memory.model.samples >= 30
    close = memory.match(entries[0].vector, entries[0].terms, EVERYONE, exclude=0)
    assert close.hits[0].chunk_id == "c0" and close.hits[0].p > 0.8
    # Deterministic: the same entries give the same weights.
    assert QuestionMemory(entries).model == memory.model


def test_the_learned_rankers_probability_is_the_confidence_before_the_memory():
    """A first passage the memory's learned ranker scored (``domain_p``, retrieval/domain.py)
    answers with that probability; an agreed match and a gap still act on it."""
    features: dict[str, float] = {}
    assert apply_recall(0.9, Recall(), [_Top("a", {"domain_p": 0.3})], features) == 0.3
    assert features["domain_p"] == 0.3
    staff = QuestionMemory([pair(1, vec(1, 0, 0), "a", staff=True)], fit=False)
    recall = staff.match(Q, TERMS, EVERYONE)
    recall.hits[0].p = 0.8
    assert apply_recall(0.9, recall, [_Top("a", {"domain_p": 0.3})], {}) == 0.8
    # A fitted pair model's match is not multiplied in: the learned probability read it.
    recall.hits[0].base = 0.2
    assert apply_recall(0.9, recall, [_Top("a", {"domain_p": 0.3})], {}) == 0.8
    # With its gate (answer from 0.4, read as 0.57): the probabilities, the match's lift
    # included, are compared on the probability scale and then mapped onto the threshold's.
    gate = Gate(probability=0.4, threshold=0.57, target=0.2, answered=0.6, wrong=0.2)
    top = [_Top("a", {"domain_p": 0.3})]
    assert apply_recall(0.9, Recall(), top, {}, gate) == pytest.approx(0.3 * 0.57 / 0.4)
    assert apply_recall(0.9, recall, top, {}, gate) == pytest.approx(gate.confidence(0.8))
    assert apply_recall(0.42, Recall(), [_Top("a", {})], {}, gate) == 0.42  # not its answer


def _passage(name: str, fused: float) -> ScoredChunk:
    chunk = Chunk(
        document_id=f"doc-{name}", version=1, index=0, text="t", title=name,
        source_path=f"{name}.md", location=Location(), lang="en", start=0, end=1, groups=(),
    )  # fmt: skip
    return ScoredChunk(chunk=chunk, score=fused, signals={})


def test_a_vouched_passage_moves_up_never_down():
    """A ranker's order is not the fused one: the learned first passage, with a low fused
    score, stays first when a match vouches for it; in the fused order it moves up."""
    a, b, c = _passage("a", 1.0), _passage("b", 0.2), _passage("c", 0.5)
    vouched = pair(1, vec(1, 0, 0), b.chunk.point_id, document_id="doc-b", staff=True)
    recall = QuestionMemory([vouched], fit=False).match(Q, TERMS, EVERYONE)
    recall.hits[0].p = 0.6

    def merged(passages: list[ScoredChunk]) -> list[str]:
        # Every vouched passage is among the found ones: the store is not read.
        out = with_memory(passages, recall, EVERYONE, None, 1.0)  # type: ignore[arg-type]
        return [p.chunk.title for p in out]

    assert merged([b, a, c]) == ["b", "a", "c"]
    assert merged([a, c, b]) == ["a", "b", "c"]


def test_the_fit_hears_a_feature_that_moves_over_a_narrow_range():
    # Cosines of confirmed questions sit between 0.88 and 1: the same need asked again is at
    # 0.97, a neighbour of the same domain at 0.90. A penalty on raw weights flattened this
    # to p of about 0.5 everywhere; on standardised features the fit follows it.
    rng = np.random.default_rng(0)
    sim = rng.uniform(0.88, 1.0, 400)
    right = rng.uniform(size=400) < 1 / (1 + np.exp(-(sim - 0.94) * 80))
    x = np.column_stack([np.ones(400), sim, np.full(400, 0.3)])  # with a constant column
    w = fit_logistic(x, right.astype(float))
    p = 1 / (1 + np.exp(-(w[0] + w[1] * np.array([0.90, 0.98]) + w[2] * 0.3)))
    assert p[0] < 0.15 and p[1] > 0.85
    # Returned over the raw features: the mean probability is the share of right answers.
    fitted = 1 / (1 + np.exp(-(x @ np.asarray(w))))
    assert abs(float(fitted.mean()) - float(right.mean())) < 0.01


def test_an_agreed_match_and_the_search_are_two_pieces_of_evidence():
    """An agreed match raises the confidence by its likelihood ratio against the pair model's
    base rate: a middling search and a middling match that agree on the passage answer
    together (0.45 and 0.3 over a base of 0.2 make 0.58) where neither would alone; a match no
    likelier than the base rate changes nothing; where the search says nothing (0), the
    match's probability is the confidence."""
    assert raised_by_pair(0.45, 0.3, 0.2) == pytest.approx(0.5838, abs=1e-4)
    assert raised_by_pair(0.45, 0.2, 0.2) == pytest.approx(0.45)
    assert raised_by_pair(0.0, 0.7, 0.2) == pytest.approx(0.7)
    assert raised_by_pair(0.6, 1.0, 0.2) == 1.0 and raised_by_pair(1.0, 0.3, 0.2) == 1.0
    values = [raised_by_pair(c, 0.4, 0.2) for c in (0.1, 0.5, 0.8, 0.99)]
    assert values == sorted(values)
    assert all(v > c for v, c in zip(values, (0.1, 0.5, 0.8, 0.99), strict=True))

    staff = QuestionMemory([pair(1, vec(1, 0, 0), "a", staff=True)], fit=False)
    recall = staff.match(Q, TERMS, EVERYONE)
    hit = recall.hits[0]
    assert hit.base is None  # the prior's p is no likelihood: it stands alone
    hit.p, hit.base = 0.3, 0.2
    assert apply_recall(0.45, recall, [_Top("a")], {}) == pytest.approx(0.5838, abs=1e-4)
    assert recall.lifted == "a"
    recall.lifted = None
    hit.p = 0.15  # under the base rate: no evidence for it, and a match never lowers
    assert apply_recall(0.45, recall, [_Top("a")], {}) == 0.45 and recall.lifted is None
    fitted = MemoryModel(fitted=True, pair_rate=0.25)
    memory = QuestionMemory([pair(1, vec(1, 0, 0), "a", staff=True)], model=fitted)
    assert recall_for(memory, Q, sorted(TERMS), EVERYONE).hits[0].base == 0.25
