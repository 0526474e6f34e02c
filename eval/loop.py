"""``kb eval --history``: what the learning loop is worth (issue 22).

Past questions (a dataset folder's ``history.jsonl``, or a fixed-seed share of its questions)
are replayed through the product's own paths before the test questions are asked: each is
asked as an employee asks it (screened, logged, queued when escalated), a simulated asker gives
the verdict the gold labels call for (a thumbs-up when the answer cites a gold document, a
thumbs-down otherwise), and a simulated support agent resolves every question that reaches the
queue: linked to the gold passage, or marked not covered when the question has no gold.
``noise`` makes that share of the verdicts wrong: a thumbs-up on a wrong answer, a thumbs-down
on a right one, a link to a passage of another document.

The test questions are asked twice, with the memory the replay built and without any, so the
report shows what the history changed. With ``learning_curve`` the test questions are then
streamed in order, each followed by its feedback, and the correct-deflection and wrong-answer
rates per window of questions make the "inquiries going down" curve.

The replay writes to its own database in a temporary folder: the index is shared with other
runs, the memory is not.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kb.eval.datasets import DatasetError, EvalDataset, EvalQuestion, _jsonl, _question_from_record
from kb.eval.gain import history_gain
from kb.eval.headroom import headroom, shared_gold
from kb.eval.index import DocKeys
from kb.eval.metrics import (
    Outcome,
    answered_at,
    answering_metrics,
    choose_threshold,
    retrieval_metrics,
    threshold_curve,
)
from kb.services.memory_read import memory_for

HISTORY_FILE = "history.jsonl"
STAFF_USER = "eval-staff"


@dataclass(frozen=True, slots=True)
class LoopOptions:
    """How ``kb eval --history`` replays the past."""

    share: float = 0.5
    """Share of a dataset's questions replayed as history when its folder has no
    ``history.jsonl`` (the rest are the test questions)."""
    noise: float = 0.0
    """Share of simulated verdicts that are wrong."""
    named: float = 1.0
    """Share of the simulated askers who, finding an answer right, name the source that held
    it ("This answered it"); the others give a plain thumbs-up, which confirms the answer's
    first cited passage."""
    seed: int = 0
    splits: int = 1
    """History splits measured (seeds ``seed`` to ``seed + splits - 1``): each replays its own
    history and asks its own test questions, and the report pools their outcomes. One split's
    figures move by several points with which questions fell on which side, and with the
    replay's own course (what was escalated, and so confirmed by staff, depends on what the
    memory had learned by then): a change is measured over several."""
    learning_curve: bool = False
    window: int = 25
    """Test questions per point of the learning curve."""


@dataclass(frozen=True, slots=True)
class Split:
    """The questions replayed as history and those measured."""

    history: tuple[EvalQuestion, ...]
    test: tuple[EvalQuestion, ...]
    source: str
    """``history.jsonl`` or ``share 0.5, seed 0``."""


def split_history(dataset: EvalDataset, options: LoopOptions) -> Split:
    """A dataset folder's ``history.jsonl`` (every question is then a test question), or a
    fixed-seed random share of its questions, kept in their order.

    :raises DatasetError: for a malformed ``history.jsonl``, or a share that leaves either
        side empty.
    """
    path = dataset.source / HISTORY_FILE if dataset.source.is_dir() else None
    if path is not None and path.is_file():
        history = tuple(_question_from_record(r, f"{path}:{n}") for n, r in _jsonl(path))
        return Split(history, dataset.questions, HISTORY_FILE)
    n = len(dataset.questions)
    k = round(n * options.share)
    if not 0 < k < n:
        raise DatasetError(
            f"{dataset.name}: a history share of {options.share} of {n} questions leaves no "
            "history or no test questions"
        )
    order = list(range(n))
    random.Random(options.seed).shuffle(order)
    chosen = set(order[:k])
    return Split(
        tuple(q for i, q in enumerate(dataset.questions) if i in chosen),
        tuple(q for i, q in enumerate(dataset.questions) if i not in chosen),
        f"share {options.share}, seed {options.seed}",
    )


@dataclass(slots=True)
class Turn:
    """One question asked through the product and what the simulated people did."""

    status: str
    cited: tuple[str, ...]
    correct: bool
    action: str


@dataclass(slots=True)
class Simulation:
    """A simulated asker and support agent acting from the gold labels through the product's
    ask, feedback and queue paths (one database for the whole replay)."""

    kb: Any
    db: Any
    keys: Callable[[str, str | None], str]
    """Store document (id, source path) -> the key gold ids use."""
    documents: dict[str, str]
    """Gold key -> store document id."""
    noise: float
    seed: int
    """Each question's draws come from its own generator (this seed, its id and the draw's
    purpose): one verdict that changes does not shift the noise of every later question."""
    named: float = 1.0
    """Share of the askers of a right answer who name its source (:attr:`LoopOptions.named`)."""
    actions: Counter[str] = field(default_factory=Counter)
    _asked: int = 0

    def ask(self, q: EvalQuestion) -> Any:
        """Ask as an employee (each question from a different one): the API's own path."""
        from kb.services.ask import answer_question
        from kb.services.identity import Identity

        self._asked += 1
        who = Identity(
            user_id=f"asker-{self._asked}",
            groups=tuple(q.groups),
            roles=("employee",),
            department="eval",
            via="eval",
        )
        return answer_question(self.kb, self.db, who, q.text, q.lang)

    def step(self, q: EvalQuestion) -> Turn:
        """Ask ``q`` and act on the answer as the gold labels say (with the noise)."""
        from kb.services import feedback

        response = self.ask(q)
        cited = tuple(self.keys(c.document_id, None) for c in response.citations)
        gold = set(q.gold_ids)
        correct = response.status == "answered" and q.answerable and bool(gold & set(cited))
        user = f"asker-{self._asked}"
        action = "escalated"
        if response.status == "answered":
            helpful = correct if not self._slip(q, "verdict") else not correct
            feedback.give_feedback(
                self.db,
                self.kb.embedders[0],
                query_id=response.query_id,
                user_id=user,
                helpful=helpful,
                comment=None,
                threshold=self.kb.settings.support.group_similarity,
                kb=self.kb,
                citation=(
                    source_named(response.citations, cited, gold)
                    if helpful and correct and self.names(q)
                    else None
                ),
            )
            action = "thumbs_up" if helpful else "thumbs_down"
            if helpful:
                self.actions[action] += 1
                return Turn(response.status, cited, correct, action)
        self.actions[action] += 1
        self.actions[self.resolve(q, response.query_id)] += 1
        return Turn(response.status, cited, correct, action)

    def names(self, q: EvalQuestion) -> bool:
        """Whether the asker of ``q`` names the source when the answer is right (a draw of
        its own, so the share moves no other draw)."""
        return self.rng(q, "named").random() < self.named

    def resolve(self, q: EvalQuestion, query_id: str) -> str:
        """The support agent resolves the queued question: linked to a gold passage, or marked
        not covered; with the noise, linked to a passage of another document instead."""
        from kb.db.models import QueueItem
        from kb.services import memory
        from kb.services.identity import Identity

        with self.db.session() as s:
            item = s.query(QueueItem).filter(QueueItem.query_id == query_id).one_or_none()
        if item is None:
            return "not_queued"
        staff = Identity(
            user_id=STAFF_USER, groups=(), roles=("support", "admin"), department=None, via="eval"
        ).access
        slip = self._slip(q, "link")
        target = None if slip else self.gold_passage(q)
        if target is None and (slip or q.answerable):
            target = self.other_passage(q)
            slip = True
        if target is None:
            memory.mark_not_covered(self.db, self.kb, item.group_id, staff, user_id=STAFF_USER)
            return "staff_not_covered"
        memory.link_group(
            self.db,
            self.kb,
            item.group_id,
            staff,
            document_id=target[0],
            chunk_id=target[1],
            user_id=STAFF_USER,
        )
        return "staff_link_wrong" if slip else "staff_link"

    def gold_passage(self, q: EvalQuestion) -> tuple[str, str] | None:
        """The passage of a gold document that best holds the reference answer (or the
        question's words): what an agent picks with the passage picker."""
        words = set(self.kb.sparse.terms(q.answer or q.text))
        best: tuple[float, str, str] | None = None
        for key in q.gold_ids:
            doc = self.documents.get(key)
            for p in self.kb.store.document_chunks(doc) if doc else []:
                found = set(self.kb.sparse.terms(p.chunk.embed_text))
                score = len(words & found) / (len(words) or 1)
                if best is None or score > best[0]:
                    best = (score, p.chunk.document_id, p.chunk.point_id)
        return (best[1], best[2]) if best else None

    def other_passage(self, q: EvalQuestion) -> tuple[str, str] | None:
        """A passage of a random document that is not gold for ``q``."""
        others = sorted(k for k in self.documents if k not in set(q.gold_ids))
        rng = self.rng(q, "other")
        for _ in range(10):
            if not others:
                return None
            doc = self.documents[rng.choice(others)]
            chunks = self.kb.store.document_chunks(doc)
            if chunks:
                p = rng.choice(chunks)
                return p.chunk.document_id, p.chunk.point_id
        return None

    def rng(self, q: EvalQuestion, purpose: str) -> random.Random:
        return random.Random(f"{self.seed}:{q.id}:{purpose}")

    def _slip(self, q: EvalQuestion, purpose: str) -> bool:
        return self.noise > 0 and self.rng(q, purpose).random() < self.noise


def source_named(citations: Sequence[Any], cited: Sequence[str], gold: set[str]) -> int | None:
    """The source an asker who found the answer names: the first citation (``[n]``) whose
    document key (``cited``, in the citations' order) is gold."""
    return next((int(c.n) for c, key in zip(citations, cited, strict=True) if key in gold), None)


@contextmanager
def product_gate(kb: Any, threshold: float) -> Iterator[None]:
    """The simulated people meet the product's confidence gate at ``threshold``: a question
    under it is escalated and queued, and staff resolve it (the evaluation otherwise asks with
    the gate open, to read every confidence, and every question would reach its asker)."""
    saved = kb.settings
    retrieval = saved.retrieval.model_copy(update={"confidence_threshold": threshold})
    kb.settings = saved.model_copy(update={"retrieval": retrieval})
    try:
        yield
    finally:
        kb.settings = saved


@contextmanager
def loop_database() -> Iterator[Any]:
    """A fresh, migrated SQLite database for one replay, removed afterwards."""
    from kb.db.engine import Database

    with tempfile.TemporaryDirectory(prefix="kb-eval-loop-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'loop.sqlite3'}")
        db.migrate()
        try:
            yield db
        finally:
            db.dispose()


def document_keys(dataset: EvalDataset, keys: Any) -> dict[str, str]:
    """Gold key -> store document id: record ids as they are, folder paths through the ids
    ingestion gave them."""
    if dataset.kind == "records":
        return {doc.id: doc.id for doc in dataset.records()}
    return {rel: doc_id for doc_id, rel in keys._id_map().items()}


def learning_curve(
    turns: Sequence[Turn], questions: Sequence[EvalQuestion], window: int
) -> list[dict[str, Any]]:
    """Correct deflection (over answerable questions) and wrong-answer rate (over answered
    ones) per window of ``window`` consecutive test questions."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(turns), window):
        end = start + window
        part = list(zip(turns[start:end], questions[start:end], strict=True))
        answerable = [t for t, q in part if q.answerable]
        answered = [t for t, _q in part if t.status == "answered"]
        out.append(
            {
                "start": start,
                "end": start + len(part),
                "correct_deflection_rate": (
                    sum(t.correct for t in answerable) / len(answerable) if answerable else None
                ),
                "wrong_answer_rate": (
                    sum(not t.correct for t in answered) / len(answered) if answered else None
                ),
                "deflection_rate": len(answered) / len(part),
            }
        )
    return out


def check_splits(dataset: EvalDataset, loop: LoopOptions) -> None:
    """:raises DatasetError: for more than one split of a dataset whose ``history.jsonl`` is
    its only one (or whose history is malformed)."""
    if loop.splits > 1 and split_history(dataset, loop).source == HISTORY_FILE:
        raise DatasetError(
            f"{dataset.name}: its {HISTORY_FILE} is its one history split; measure it with "
            "--splits 1"
        )


def replay_and_ask(
    kb: Any,
    dataset: EvalDataset,
    loop: LoopOptions,
    ask_all: Callable[..., tuple[list[Outcome], list[dict[str, Any]]]],
    *,
    threshold: float,
    progress: bool,
    depth: int | None,
) -> tuple[list[Outcome], list[dict[str, Any]], dict[str, Any]]:
    """Per history split (:attr:`LoopOptions.splits`): ask the test questions without memory,
    replay the history, ask them again with the memory it built (and, for the first split,
    stream them with feedback for the learning curve).

    :returns: the outcomes and details with history, every split's pooled (a detail names its
        split's seed), and the report's ``without_history`` (pooled), ``history`` (the first
        split's replay, and each split's figures under ``splits``) and ``learning_curve``
        entries.
    :raises DatasetError: see :func:`check_splits`.
    """
    check_splits(dataset, loop)
    before: list[Outcome] = []
    outcomes: list[Outcome] = []
    details: list[dict[str, Any]] = []
    splits: list[dict[str, Any]] = []
    counts: list[dict[str, int]] = []
    extra: dict[str, Any] = {}
    for n in range(max(1, loop.splits)):
        options = replace(loop, seed=loop.seed + n, learning_curve=loop.learning_curve and n == 0)
        without, with_history, found, replayed = _replay_split(
            kb, dataset, options, ask_all, threshold=threshold, progress=progress, depth=depth
        )
        before += without
        outcomes += with_history
        details += [{**d, "split": options.seed} for d in found]
        counts.append(replayed["history"]["headroom"])  # shared_gold's, for the pooled figure
        without_split = answering_metrics(without, threshold)
        replayed["history"]["headroom"] = headroom(
            [counts[-1]], without_split["wrong_answer_rate"], with_history
        )
        splits.append(
            {
                "seed": options.seed,
                "without_history": without_split,
                "answering": answering_metrics(with_history, threshold),
                "memory_ranker": (replayed["history"].get("memory_ranker") or {}).get("state"),
                "headroom": replayed["history"]["headroom"],
            }
        )
        if n == 0:
            extra = replayed
    without_all = answering_metrics(before, threshold)
    extra["history"]["headroom"] = headroom(counts, without_all["wrong_answer_rate"], outcomes)
    extra["history"]["gain"] = history_gain(before, outcomes, threshold)
    extra["without_history"] = {
        "answering": without_all,
        "retrieval": retrieval_metrics(before),
        "chosen_threshold": choose_threshold(threshold_curve(before)),
    }
    if loop.splits > 1:
        extra["history"]["splits"] = splits
        extra["history"]["changed"] = changed_outcomes(before, outcomes, threshold)
    return outcomes, details, extra


def _replay_split(
    kb: Any,
    dataset: EvalDataset,
    loop: LoopOptions,
    ask_all: Callable[..., tuple[list[Outcome], list[dict[str, Any]]]],
    *,
    threshold: float,
    progress: bool,
    depth: int | None,
) -> tuple[list[Outcome], list[Outcome], list[dict[str, Any]], dict[str, Any]]:
    """One history split (``loop.seed``): the test outcomes without and with its history,
    the details with it, and the report's ``history`` (and ``learning_curve``) entries."""
    split = split_history(dataset, loop)
    test = replace(dataset, questions=split.test)
    keys = DocKeys(dataset)
    before, _ = ask_all(kb, test, keys=keys, progress=progress, depth=depth)
    with loop_database() as db:
        sim = Simulation(
            kb,
            db,
            keys=keys.key,
            documents=document_keys(dataset, keys),
            noise=loop.noise,
            seed=loop.seed,
            named=loop.named,
        )
        with product_gate(kb, threshold):
            for q in split.history:
                sim.step(q)
            # Fitted as the product fits it, at the configured threshold: the learned gate is
            # held to what that gate did (the test questions are asked with the gate open).
            memory = memory_for(db, kb)
        replayed = dict(sim.actions)
        outcomes, details = ask_all(
            kb, test, keys=keys, progress=progress, depth=depth, memory=memory
        )
        extra: dict[str, Any] = {
            "history": {
                "source": split.source,
                "questions": len(split.history),
                "test_questions": len(split.test),
                "feedback_noise": loop.noise,
                "named_source": loop.named,
                "actions": replayed,
                "memory_entries": len(memory) if memory is not None else 0,
                "memory_model_fitted": bool(memory is not None and memory.model.fitted),
                "memory_ranker": (
                    memory.learning.to_dict()
                    if memory is not None and memory.learning is not None
                    else None
                ),
                "changed": changed_outcomes(before, outcomes, threshold),
                # Completed by replay_and_ask, which has the without-history figures.
                "headroom": shared_gold(split.history, split.test, before, outcomes),
            },
        }
        if loop.learning_curve:
            sim.actions.clear()
            with product_gate(kb, threshold):
                turns = [sim.step(q) for q in split.test]
            extra["learning_curve"] = {
                "window": loop.window,
                "points": learning_curve(turns, split.test, loop.window),
                "actions": dict(sim.actions),
            }
    return before, outcomes, details, extra


def changed_outcomes(
    before: Sequence[Outcome], after: Sequence[Outcome], threshold: float
) -> dict[str, list[str]]:
    """Question ids whose outcome the history improved (``gained``: now right, before not) or
    worsened (``lost``); right is a correct answer, or an escalation when there is none."""

    def right(o: Outcome) -> bool:
        answered = answered_at(o, threshold)
        return (answered and o.cites_gold) if o.question.answerable else not answered

    out: dict[str, list[str]] = {"gained": [], "lost": []}
    for b, a in zip(before, after, strict=True):
        if right(a) != right(b):
            out["gained" if right(a) else "lost"].append(a.question.id)
    return out
