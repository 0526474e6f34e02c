"""The ranker the question memory learns (retrieval/domain.py): its evidence, its safeguards and
its 5-fold check, on synthetic candidates."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kb.retrieval.domain import (
    FEATURES,
    MIN_QUESTIONS,
    DomainRanker,
    Example,
    _answer_row,
    learn,
)
from kb.retrieval.evidence import MEMORY_RANK_FEATURES, Evidence
from kb.retrieval.gate import wrong_rate
from kb.retrieval.memory import MemoryEntry
from kb.retrieval.models import AccessFilter, Chunk, Location, ScoredChunk
from kb.retrieval.rerank import MONOTONE, RANK_FEATURES

EVERYONE = AccessFilter()
BM25 = RANK_FEATURES.index("bm25_rank")
FUSED = RANK_FEATURES.index("fused_rank")
COVERAGE = RANK_FEATURES.index("coverage_idf")
CANDIDATES = 8


def unit(rng: np.random.Generator, dim: int = 16) -> list[float]:
    v = rng.normal(size=dim)
    return list(v / np.linalg.norm(v))


def entry(i: int, vector: list[float], doc: str, **kw: object) -> MemoryEntry:
    fields: dict[str, object] = {
        "id": i,
        "kind": "pair",
        "vector": vector,
        "terms": frozenset(),
        "document_id": doc,
        "chunk_id": f"{doc}-c",
        "confirmer": "staff-1",
        "staff": True,
        "query_id": f"q{i}",
    }
    fields.update(kw)
    return MemoryEntry(**fields)  # type: ignore[arg-type]


def passage(doc: str) -> ScoredChunk:
    chunk = Chunk(
        document_id=doc, version=1, index=0, text="t", title=doc, source_path=f"{doc}.md",
        location=Location(), lang="en", start=0, end=1, groups=(),
    )  # fmt: skip
    return ScoredChunk(chunk=chunk, score=1.0, signals={})


def candidates(rng: np.random.Generator, right: int) -> np.ndarray:
    """Features of :data:`CANDIDATES` fused candidates where the right one (``right``) is
    the one BM25 ranks first, wherever fusion put it."""
    x = rng.uniform(size=(CANDIDATES, len(RANK_FEATURES)))
    x[:, FUSED] = np.arange(CANDIDATES)
    bm25 = rng.permutation(np.arange(1, CANDIDATES)).astype(float)
    x[:, BM25] = np.insert(bm25, right, 0.0)
    return x


def examples(n: int, *, learnable: bool, seed: int = 0) -> list[Example]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        right = int(rng.integers(0, CANDIDATES))
        docs = tuple(f"doc-{i}-{j}" for j in range(CANDIDATES))
        features = candidates(rng, right if learnable else int(rng.integers(0, CANDIDATES)))
        out.append(Example(entry(i, unit(rng), docs[right]), features, docs, docs[right]))
    return out


def fitted(exs: list[Example]) -> DomainRanker | None:
    """The ranker learned from ``exs`` (their entries as the memory), or ``None``."""
    return learn(exs, [ex.entry for ex in exs], threshold=0.57).ranker


def test_a_learnable_signal_is_learned_and_beats_the_fused_order_out_of_fold():
    exs = examples(120, learnable=True)
    ranker = fitted(exs)
    assert ranker is not None
    v = ranker.validation
    assert v.questions == 120 and v.learned > v.fused + 0.3
    # A new question: BM25's first (fused fifth) goes first.
    rng = np.random.default_rng(99)
    x = candidates(rng, 4)
    passages = [passage(f"n{j}") for j in range(CANDIDATES)]
    scores = ranker.scores(x, passages, unit(rng), EVERYONE)
    assert int(np.argmax(scores)) == 4


def runners_up(n: int, seed: int = 7) -> list[Example]:
    """The right candidate is BM25's first or second (a decoy the other), and fusion put it
    fourth or later: the learned order's second and third places find it, the search's do
    not."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        right = int(rng.integers(3, CANDIDATES))
        decoy = int(rng.integers(0, 3))
        docs = tuple(f"doc-{i}-{j}" for j in range(CANDIDATES))
        x = rng.uniform(size=(CANDIDATES, len(RANK_FEATURES)))
        x[:, FUSED] = np.arange(CANDIDATES)
        x[:, BM25] = CANDIDATES
        x[right, BM25], x[decoy, BM25] = (0.0, 1.0) if i % 2 else (1.0, 0.0)
        out.append(Example(entry(i, unit(rng), docs[right]), x, docs, docs[right]))
    return out


def test_the_learned_first_is_followed_by_the_search_unless_the_learned_rest_does_better():
    """A ranker fitted to put one confirmed document first can order the rest worse than the
    search did; out of fold, the confirmed document is looked for among the first three of the
    learned order and of the learned first followed by the search's order, and the second is
    used unless the first finds it more often (emanual_tv's history, docs/question-memory.md)."""
    passages = [passage(f"n{j}") for j in range(CANDIDATES)]
    rng = np.random.default_rng(99)

    firsts = fitted(examples(120, learnable=True))  # the right one first: the rest never counts
    assert firsts is not None
    v = firsts.validation
    assert v.search_after_cited >= v.learned_cited and firsts.search_after
    ranked = firsts.rank(passages, candidates(rng, 4), unit(rng), EVERYONE)
    assert [p.chunk.document_id for p in ranked] == ["n4", "n0", "n1", "n2", "n3", "n5", "n6", "n7"]

    seconds = fitted(runners_up(200))
    assert seconds is not None
    v = seconds.validation
    assert v.learned_cited > v.search_after_cited and not seconds.search_after
    x = runners_up(1, seed=8)[0].features
    ranked = seconds.rank(passages, x, unit(rng), EVERYONE)
    top_two = {int(np.argmin(x[:, BM25])), int(np.argsort(x[:, BM25])[1])}
    assert {p.chunk.document_id for p in ranked[:2]} == {f"n{j}" for j in top_two}
    shown = learn(runners_up(200), [ex.entry for ex in runners_up(200)], threshold=0.57)
    assert shown.to_dict()["learned_cited"] == v.learned_cited


def test_a_better_candidate_never_scores_lower():
    """The learned ranker keeps the shipped one's constraints (retrieval.rerank.MONOTONE):
    raising a constrained search feature alone never moves a score the other way."""
    ranker = fitted(examples(120, learnable=True))
    assert ranker is not None
    rng = np.random.default_rng(5)
    vector = unit(rng)
    passages = [passage(f"n{j}") for j in range(CANDIDATES)]
    x = rng.uniform(size=(CANDIDATES, len(RANK_FEATURES))) * 4
    base = np.asarray(ranker.scores(x, passages, vector, EVERYONE))
    for name, direction in MONOTONE.items():
        if name not in RANK_FEATURES:
            continue
        up = x.copy()
        up[:, RANK_FEATURES.index(name)] += 2.0
        moved = (np.asarray(ranker.scores(up, passages, vector, EVERYONE)) - base) * direction
        assert moved.min() >= -1e-9, name


def mixed(n: int, seed: int = 3) -> list[Example]:
    """Seven in ten questions learnable, the rest not (the learned first is then often
    wrong), and their candidates cover the question's rare words where the others' do not
    (what the answerability can tell); the configured gate answered two in three, right four
    times in five."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        right = int(rng.integers(0, CANDIDATES))
        docs = tuple(f"doc-{i}-{j}" for j in range(CANDIDATES))
        learnable = i % 10 < 7
        signal = right if learnable else int(rng.integers(0, CANDIDATES))
        x = candidates(rng, signal)
        x[:, COVERAGE] = float(learnable)
        plain = (0.9 if i % 3 else 0.2, docs[right] if i % 5 else docs[0])
        e = entry(i, unit(rng), docs[right])
        out.append(Example(e, x, docs, docs[right], plain))
    return out


def test_the_learned_gate_is_held_to_the_configured_gates_wrong_rate():
    """Without a target, the learned answerability answers from the probability that keeps
    the wrong-answer rate the configured gate had on the same questions (out of fold); a
    probability at that point reads as the configured threshold."""
    exs = mixed(200)
    ranker = fitted(exs)
    assert ranker is not None and ranker.answerability is not None
    gate = ranker.gate
    assert gate is not None and gate.threshold == 0.57
    plain = [ex.plain for ex in exs if ex.plain is not None]
    answered = [c >= 0.57 for c, _ in plain]
    right = [d == ex.answer for ex, (_, d) in zip(exs, plain, strict=True)]
    assert gate.target == wrong_rate(answered, right)
    assert gate.wrong <= gate.target and 0.0 < gate.answered < 1.0
    strict = learn(exs, [ex.entry for ex in exs], threshold=0.57, target=0.05).ranker
    assert strict is not None and strict.gate is not None
    assert strict.gate.probability > gate.probability
    # A probability at the gate reads as the configured threshold.
    assert gate.confidence(gate.probability) == pytest.approx(0.57)
    # Nothing known of the configured gate: the probability is the confidence as it is.
    bare = [Example(ex.entry, ex.features, ex.documents, ex.answer) for ex in exs]
    unknown = fitted(bare)
    assert unknown is not None and unknown.gate is None


def test_a_learned_gate_that_answers_fewer_right_than_the_configured_one_is_not_kept():
    """Kept only if it helps, as the ranker is: where the configured gate answered every
    confirmed question right, no learned gate can hold its wrong-answer rate (none) over ten
    answers, and answering nothing would cost every answer; the configured confidence decides."""
    exs = [replace(ex, plain=(0.9, ex.answer)) for ex in mixed(200)]
    learning = learn(exs, [ex.entry for ex in exs], threshold=0.57)
    ranker = learning.ranker
    assert ranker is not None  # the order is still learned
    assert ranker.answerability is None and ranker.gate is None
    shown = learning.to_dict()
    assert shown["configured_right"] == 200 and shown["answerability_right"] == 0
    assert not shown["answerability"]
    # Where it answers more of them right, it is kept (and the figures say by how much).
    kept = learn(mixed(200), [ex.entry for ex in mixed(200)], threshold=0.57).to_dict()
    assert kept["answerability"] and kept["answerability_right"] >= kept["configured_right"]


def test_an_answer_the_asker_confirmed_counts_right_whichever_passage_it_cited_first():
    """A thumbs-up is a verdict on the answer: the learned gate and the configured gate it is
    held to count an answer from any document the confirmed answer cited as right; the ranker
    still learns the confirmed passage."""
    exs = []
    for ex in mixed(200):
        docs = ex.documents
        cited = frozenset({docs[0]}) if ex.entry.id % 2 else frozenset()
        e = replace(ex.entry, staff=False, confirmer=f"asker-{ex.entry.id}")
        exs.append(Example(e, ex.features, docs, ex.answer, ex.plain, cited))
    one = exs[1]
    assert one.answered_by(one.answer) and one.answered_by(one.documents[0])
    assert not exs[0].answered_by(exs[0].documents[0]) or exs[0].answer == exs[0].documents[0]
    assert one.labels.count(1) == 1  # the ranker's label: the confirmed document alone
    ranker = fitted(exs)
    assert ranker is not None and ranker.gate is not None
    plain = [ex.plain for ex in exs if ex.plain is not None]
    answered = [c >= 0.57 for c, _ in plain]
    accepted = [ex.answered_by(d) for ex, (_, d) in zip(exs, plain, strict=True)]
    first_only = [d == ex.answer for ex, (_, d) in zip(exs, plain, strict=True)]
    assert ranker.gate.target == wrong_rate(answered, accepted) < wrong_rate(answered, first_only)


def test_no_model_from_too_few_questions_or_from_noise():
    few = examples(MIN_QUESTIONS - 1, learnable=True)
    assert fitted(few) is None
    noise = examples(150, learnable=False, seed=3)
    assert fitted(noise) is None


def test_the_fit_is_deterministic():
    exs = examples(80, learnable=True, seed=5)
    a = fitted(exs)
    b = fitted(exs)
    assert a is not None and b is not None
    x = candidates(np.random.default_rng(1), 2)
    passages = [passage(f"d{j}") for j in range(CANDIDATES)]
    v = unit(np.random.default_rng(2))
    assert a.scores(x, passages, v, EVERYONE) == b.scores(x, passages, v, EVERYONE)


def features_of(evidence: Evidence, v: list[float], docs: list[str], **kw: object) -> dict:
    rows = evidence.features(v, docs, kw.pop("acl", EVERYONE), **kw)  # type: ignore[arg-type]
    return {
        d: dict(zip(MEMORY_RANK_FEATURES, row, strict=True))
        for d, row in zip(docs, rows, strict=True)
    }


def test_evidence_reads_agreed_documents_only():
    q = [1.0, 0.0, 0.0]
    near = [0.99, 0.14, 0.0]
    lone = entry(1, near, "lone", staff=False, confirmer="asker-1")
    two = [
        entry(2, near, "two", staff=False, confirmer="asker-2"),
        entry(3, [0.98, 0.2, 0.0], "two", staff=False, confirmer="asker-3"),
    ]
    same = [
        entry(4, near, "same", staff=False, confirmer="asker-4"),
        entry(5, near, "same", staff=False, confirmer="asker-4"),
    ]
    staff = entry(6, [0.9, 0.43, 0.0], "staff")
    got = features_of(Evidence([lone, *two, *same, staff]), q, ["lone", "two", "same", "staff"])
    assert got["lone"]["memory_best"] == 0.0  # one asker's thumbs-up moves nothing
    assert got["same"]["memory_best"] == 0.0  # one asker twice is still one asker
    assert got["two"]["memory_best"] == pytest.approx(0.99, abs=0.01)
    assert got["two"]["memory_nearest"] == 1.0 and got["two"]["memory_count"] == 2
    assert got["staff"]["memory_best"] == pytest.approx(0.9, abs=0.01)
    assert got["staff"]["memory_nearest"] == 0.0
    assert got["staff"]["memory_lead"] == pytest.approx(0.09, abs=0.01)


def test_evidence_respects_groups_gaps_and_leaving_a_question_out():
    q = [1.0, 0.0]
    hr = entry(1, [1.0, 0.0], "hr-doc", groups=("hr",))
    gap = entry(2, [1.0, 0.0], "x", kind="gap")
    own = entry(3, [1.0, 0.0], "mine", query_id="asked-now")
    evidence = Evidence([hr, gap, own])
    assert features_of(evidence, q, ["hr-doc"])["hr-doc"]["memory_best"] == 0.0
    hr_acl = AccessFilter(("hr",))
    assert features_of(evidence, q, ["hr-doc"], acl=hr_acl)["hr-doc"]["memory_best"] > 0.99
    assert features_of(evidence, q, ["x"])["x"]["memory_best"] == 0.0
    mine = features_of(evidence, q, ["mine"], exclude="asked-now")["mine"]
    assert mine["memory_best"] == 0.0 and mine["memory_lead"] == 1.0


def test_new_evidence_applies_at_once():
    exs = examples(100, learnable=True, seed=8)
    ranker = fitted(exs)
    assert ranker is not None
    v = [1.0, *([0.0] * 15)]
    confirmed = entry(500, v, "doc-x")
    with_it = ranker.with_evidence(Evidence([confirmed]))
    without = ranker.with_evidence(Evidence([]))  # the entry was demoted or went stale
    assert with_it.evidence.features(v, ["doc-x"], EVERYONE)[0, 0] == pytest.approx(1.0)
    assert without.evidence.features(v, ["doc-x"], EVERYONE)[0, 0] == 0.0
    assert len(FEATURES) == len(RANK_FEATURES) + len(MEMORY_RANK_FEATURES)


def test_the_answerability_reads_the_ranker_scores_within_the_question():
    # The answerability is fitted on out-of-fold boosters' scores and reads the full booster's:
    # raw lambdarank scores drift in scale from one fit to the next, so it reads where the
    # first candidate stands among the question's candidates, not the raw score.
    rows = np.zeros((4, len(FEATURES)))
    scores = [0.2, 1.4, -0.3, 0.5]
    row = _answer_row(rows, scores)
    for a, b in ((3.0, 0.0), (0.5, -2.0)):
        assert _answer_row(rows, [a * x + b for x in scores]) == pytest.approx(row)
    assert row[2] == pytest.approx((1.4 - 0.5) / float(np.std(scores)))
