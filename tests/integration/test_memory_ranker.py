"""The ranker the question memory learns (issue 22), with the real store, embedding model and
database.

A knowledge base where the search keeps putting the wrong document first: for each topic an
index page that repeats the words people ask with (and answers nothing) and a procedure that
answers in its own words. Staff link each question to the procedure. The memory learns a
ranker from those links that puts the procedure first for questions it never saw, the search
uses it, and the safeguards hold (the switch, the minimum, demotion at once, groups). On the
sample knowledge base, whose example questions the search already ranks well, the learned
ranker is not kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kb.db.engine import Database
from kb.db.models import MemoryEntry, utcnow
from kb.ingest.pipeline import Ingestor, IngestReport
from kb.retrieval.domain import DomainRanker
from kb.retrieval.models import AccessFilter
from kb.retrieval.service import KnowledgeBase
from kb.services import feedback
from kb.services.ask import answer_question
from kb.services.domain import Examples
from kb.services.identity import Identity
from kb.services.memory_read import learning, memory_for, wait_for_refit
from tests.integration._kb import open_kb, settings_for

from .conftest import load_cases

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EVERYONE = AccessFilter()

TOPICS = [
    ("reset", "badge printer",
     "Hold the amber key for ten seconds until the ribbon lamp blinks twice."),
    ("renew", "parking permit",
     "Bring form PK-7 to the facilities desk on the second floor before the 20th."),
    ("pair", "conference headset",
     "Slide the side switch to the dot, then choose RoomLink-4 in the list."),
    ("calibrate", "plotter",
     "Load the grey test sheet and run routine C-12 from the service menu."),
    ("unlock", "locker",
     "Enter the four digits printed on your access card followed by the star key."),
    ("archive", "project mailbox",
     "File ticket MB-ARC with the project code; IT moves it within a day."),
    ("rotate", "door code",
     "Security sends the new code every Monday; enter it on the keypad twice."),
    ("register", "visitor pass",
     "Fill in the guest form on the reception tablet an hour before arrival."),
]  # fmt: skip
GAPS = [
    "How do I book the canteen for a team lunch?",
    "When does the gym in the basement open?",
    "How do I claim travel expenses?",
    "Who approves overtime on weekends?",
    "How many days of parental leave do I get?",
    "Where do I order new business cards?",
]
CONFIRMED = [
    "How do I {v} the {t}?",
    "What is the way to {v} the {t}?",
    "Can you tell me how to {v} the {t}?",
    "I need to {v} the {t}. What do I do?",
    "What are the steps to {v} the {t}?",
    "Where do I start if I want to {v} the {t}?",
    "Who explains how to {v} the {t}?",
    "Is there a guide to {v} the {t}?",
]
NEW = ["Please help me {v} the {t}.", "What should I do to {v} the {t}?"]


def write_corpus(folder: Path) -> None:
    for i, (verb, thing, steps) in enumerate(TOPICS):
        asked = " ".join(q.format(v=verb, t=thing) for q in CONFIRMED[:4])
        (folder / f"index-{i}.md").write_text(
            f"# How to {verb} the {thing}\n\n## Questions about the {thing}\n\n"
            f"People often ask: {asked} The {thing} team collects these questions about how to "
            f"{verb} the {thing} and answers them in its procedure.\n",
            encoding="utf-8",
        )
        (folder / f"procedure-{i}.md").write_text(
            f"# Procedure P-{i}\n\n## Steps\n\n{steps}\n", encoding="utf-8"
        )


@pytest.fixture(scope="module")
def corrected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KnowledgeBase, dict]]:
    root = tmp_path_factory.mktemp("corrected")
    corpus = root / "corpus"
    corpus.mkdir()
    write_corpus(corpus)
    with open_kb(settings_for(root / "data")) as (kb, db):
        report = Ingestor(kb, db).sync_folder(corpus)
        yield kb, {Path(f.path).stem: f.document_id for f in report.files}


@contextmanager
def support(kb: KnowledgeBase, **changes: Any) -> Iterator[None]:
    saved = kb.settings
    kb.settings = saved.model_copy(update={"support": saved.support.model_copy(update=changes)})
    try:
        yield
    finally:
        kb.settings = saved


def confirm(db: Database, kb: KnowledgeBase, text: str, doc: str, n: int, **row: Any) -> None:
    """A staff member linked ``text`` to the first passage of ``doc``."""
    with db.session() as s:
        s.add(
            MemoryEntry(
                kind="pair",
                how="staff_link",
                query_id=f"q-{n}",
                question=text,
                lang="en",
                embedder=kb.embedders[0].name,
                vector=kb.query_vector(text),
                terms=sorted(set(kb.sparse.terms(text))),
                document_id=doc,
                chunk_id=kb.store.document_chunks(doc)[0].chunk.point_id,
                confirmed_by="staff-1",
                staff=True,
                **row,
            )
        )
        s.commit()


def link_all(db: Database, kb: KnowledgeBase, docs: dict[str, str]) -> None:
    n = 0
    for i, (verb, thing, _) in enumerate(TOPICS):
        for template in CONFIRMED:
            n += 1
            confirm(db, kb, template.format(v=verb, t=thing), docs[f"procedure-{i}"], n)


def mark_gaps(db: Database, kb: KnowledgeBase) -> None:
    """Staff marked these questions "not covered by the knowledge base"."""
    with db.session() as s:
        for n, text in enumerate(GAPS):
            s.add(
                MemoryEntry(
                    kind="gap", how="not_covered", query_id=f"gap-{n}", question=text,
                    lang="en", embedder=kb.embedders[0].name, vector=kb.query_vector(text),
                    terms=sorted(set(kb.sparse.terms(text))), confirmed_by="staff-1", staff=True,
                )
            )  # fmt: skip
        s.commit()


def first_right(kb: KnowledgeBase, docs: dict[str, str], memory: Any) -> int:
    right = 0
    for i, (verb, thing, _) in enumerate(TOPICS):
        for template in NEW:
            question = template.format(v=verb, t=thing)
            found, _ = kb.search(question, acl=AccessFilter(), lang="en", memory=memory)
            right += found[0].chunk.document_id == docs[f"procedure-{i}"]
    return right


def test_staff_corrections_teach_a_ranker_the_search_then_uses(
    corrected: tuple[KnowledgeBase, dict], db: Database
) -> None:
    kb, docs = corrected
    link_all(db, kb, docs)
    mark_gaps(db, kb)
    with support(kb, memory_refit="inline", memory_answerability=True):
        memory = memory_for(db, kb)
        shown = learning(db, kb)  # what the console shows staff
    assert memory is not None and isinstance(memory.ranker, DomainRanker)
    v = memory.ranker.validation
    # Fitted on four fifths of the corrected questions, it ranks the fifth better.
    assert v.questions == len(TOPICS) * len(CONFIRMED) and v.learned > v.fused
    assert shown["ranker"] == "learned" and shown["gaps"] == len(GAPS)
    assert shown["learned_first_right"] == round(v.learned, 4)
    # After its first passage, the search's order unless the learned one did better there.
    assert shown["learned_cited"] == v.learned_cited and shown["search_after_cited"] > 0
    assert shown["search_after"] == (v.search_after_cited >= v.learned_cited)

    question = NEW[0].format(v=TOPICS[0][0], t=TOPICS[0][1])
    found, _ = kb.search(question, acl=AccessFilter(), lang="en", memory=memory)
    assert all("ranker" in p.signals for p in found)  # the learned order, not the fused one
    # Fitted on the out-of-fold first candidates, the gaps included: a probability.
    assert shown["answerability"] and 0.5 < found[0].signals["domain_p"] <= 1.0
    # It answers from the probability that holds the configured gate's wrong-answer rate on
    # the same questions: the search alone answered each one it answered from an index page.
    gate = memory.ranker.gate
    assert gate is not None and gate.target == shown["target_wrong_rate"] == 1.0
    assert round(gate.wrong, 4) == shown["validated_wrong_rate"] < 0.15
    answer = kb.ask(question, acl=AccessFilter(), lang="en", memory=memory)
    assert answer.features["domain_p"] == found[0].signals["domain_p"]
    assert answer.confidence == pytest.approx(gate.confidence(answer.features["domain_p"]))
    plain, _ = kb.search(question, acl=AccessFilter(), lang="en")
    assert all("ranker" not in p.signals for p in plain)

    # Questions nobody confirmed: the search alone puts the index page first; learned, the
    # procedure comes first.
    before, after = first_right(kb, docs, None), first_right(kb, docs, memory)
    assert after > before
    assert after >= len(TOPICS) * len(NEW) - 2


def test_without_its_answerability_the_learned_order_quotes_and_the_search_decides(
    corrected: tuple[KnowledgeBase, dict], db: Database
) -> None:
    """By default (``support.memory_answerability`` off) the learned ranker comes without an
    answerability, as one whose answerability was not kept does: the answer quotes the learned
    order, and whether it answers is what the configured confidence makes of the search's own
    order, as without the memory (read on the learned order, it escalated right answers)."""
    kb, docs = corrected
    link_all(db, kb, docs)
    mark_gaps(db, kb)
    with support(kb, memory_refit="inline"):
        memory = memory_for(db, kb)
        shown = learning(db, kb)
    assert memory is not None and memory.ranker is not None
    assert memory.ranker.answerability is None and memory.ranker.gate is None
    assert shown["ranker"] == "learned" and not shown["answerability"]
    inputs = set(kb.settings.retrieval.confidence_weights)
    moved = 0
    for i, (verb, thing, _) in enumerate(TOPICS):
        question = NEW[1].format(v=verb, t=thing)
        plain = kb.extractive(question, acl=EVERYONE, lang="en")
        learned = kb.extractive(question, acl=EVERYONE, lang="en", memory=memory)
        assert "domain_p" not in learned.features
        assert {k: learned.features[k] for k in inputs} == {k: plain.features[k] for k in inputs}
        if not learned.memory or not any(
            m.get("lifted") or m.get("applied") for m in learned.memory
        ):
            assert learned.confidence == pytest.approx(plain.confidence)
        assert learned.passages[0].chunk.document_id == docs[f"procedure-{i}"]
        moved += plain.passages[0].chunk.document_id != docs[f"procedure-{i}"]
    assert moved >= len(TOPICS) // 2  # the search alone put the index page first


def test_a_thumbs_up_teaches_the_whole_answer_it_confirmed(
    corrected: tuple[KnowledgeBase, dict], db: Database
) -> None:
    """An asker's thumbs-up confirms the answer: its first cited passage is the memory's pair,
    and an answer from any other document it cited is one the asker accepted (the query log's
    citations: what the learned gate counts right); a staff link names its one document."""
    kb, docs = corrected
    asker = Identity(user_id="asker-1", groups=(), roles=("employee",), department=None, via="test")
    question = "reset badge printer amber key ribbon lamp"  # cites the index page, then P-0
    response = answer_question(kb, db, asker, question, "en")
    assert response.status == "answered" and len(response.citations) > 1
    feedback.give_feedback(
        db, kb.embedders[0], query_id=response.query_id, user_id="asker-1", helpful=True,
        comment=None, threshold=kb.settings.support.group_similarity, kb=kb,
    )  # fmt: skip
    confirm(db, kb, "What are the steps to renew the parking permit?", docs["procedure-1"], 1)
    memory = memory_for(db, kb)
    assert memory is not None and len(memory) == 2
    examples = {ex.entry.staff: ex for ex in Examples().for_entries(db, kb, memory.entries)}
    cited = [c.document_id for c in response.citations]
    thumbs = examples[False]
    assert thumbs.answer == cited[0] and thumbs.cited == set(cited[1:]) - {cited[0]}
    assert all(thumbs.answered_by(d) for d in cited) and not thumbs.answered_by("elsewhere")
    assert examples[True].cited == frozenset()


def test_the_switch_and_the_minimum_keep_the_searchs_order(
    corrected: tuple[KnowledgeBase, dict], db: Database
) -> None:
    kb, docs = corrected
    link_all(db, kb, docs)
    with support(kb, memory_refit="inline", memory_ranker=False):
        memory = memory_for(db, kb)
    assert memory is not None and memory.ranker is None and memory.learning.state == "off"
    with db.session() as s:  # fewer than 50 confirmed questions
        for row in s.query(MemoryEntry).filter(MemoryEntry.id > 40):
            row.state, row.updated_at = "removed", utcnow()
        s.commit()
    with support(kb, memory_refit="inline"):
        memory = memory_for(db, kb)
    assert memory is not None and len(memory) == 40 and memory.ranker is None
    assert memory.learning.state == "too_few" and memory.learning.questions == 40


def test_one_more_answer_is_evidence_at_once_and_a_tenth_more_refits(
    corrected: tuple[KnowledgeBase, dict], db: Database
) -> None:
    kb, docs = corrected
    link_all(db, kb, docs)
    with support(kb, memory_refit="inline"):
        fitted = memory_for(db, kb)
        assert fitted is not None and fitted.ranker is not None
        text = "How would I unlock the locker in the gym?"
        confirm(db, kb, text, docs["procedure-4"], 1000)
        grown = memory_for(db, kb)
        assert grown is not None and grown is not fitted and len(grown) == len(fitted) + 1
        assert grown.learning is fitted.learning  # no refit for one answer...
        vector = kb.query_vector(text)
        assert grown.ranker is not None
        assert grown.ranker.evidence.features(vector, [docs["procedure-4"]], EVERYONE)[0, 0] > 0.999
        for n in range(1001, 1001 + len(fitted) // 10):
            confirm(db, kb, f"{text} ({n})", docs["procedure-4"], n)
        refitted = memory_for(db, kb)
        assert refitted is not None and refitted.learning is not fitted.learning  # ...a tenth
        assert refitted.learning.entries == len(refitted)


def test_a_demoted_answer_stops_counting_before_the_refit_ends(
    corrected: tuple[KnowledgeBase, dict], db: Database
) -> None:
    kb, docs = corrected
    link_all(db, kb, docs)
    assert kb.settings.support.memory_refit == "background"
    memory_for(db, kb)
    assert wait_for_refit(300)
    fitted = memory_for(db, kb)
    assert fitted is not None and fitted.ranker is not None
    target = fitted.entries[0]
    doc = target.document_id
    assert doc is not None
    vector = list(target.vector)
    assert fitted.ranker.evidence.features(vector, [doc], AccessFilter())[0, 0] > 0.999
    with db.session() as s:
        for row in s.query(MemoryEntry).filter(MemoryEntry.document_id == doc):
            row.state, row.updated_at = "demoted", utcnow()
        s.commit()
    now = memory_for(db, kb)  # the refit runs in the background; the evidence is new already
    assert now is not None and now.ranker is not None
    assert now.ranker.evidence.features(vector, [doc], AccessFilter())[0, 0] == 0.0
    assert wait_for_refit(300)


def test_a_groups_confirmed_answer_is_no_evidence_for_others(
    corrected: tuple[KnowledgeBase, dict], db: Database
) -> None:
    kb, docs = corrected
    link_all(db, kb, docs)
    text = "How do I reset the badge printer in the HR wing?"
    confirm(db, kb, text, docs["procedure-1"], 999, groups=["hr"])
    with support(kb, memory_refit="inline"):
        memory = memory_for(db, kb)
    assert memory is not None and memory.ranker is not None
    evidence = memory.ranker.evidence
    vector = kb.query_vector(text)
    everyone = evidence.features(vector, [docs["procedure-1"]], AccessFilter())[0]
    hr = evidence.features(vector, [docs["procedure-1"]], AccessFilter(("hr",)))[0]
    assert hr[0] > 0.999  # its own question, for a member of hr
    assert everyone[0] < 0.95  # for others, only the other topic's questions count


def test_on_the_sample_the_search_is_right_already_and_nothing_is_learned(
    sample_kb: tuple[KnowledgeBase, Database, IngestReport], db: Database
) -> None:
    kb, _, report = sample_kb
    ids = {f.path: f.document_id for f in report.files}
    n = 0
    for case in load_cases():
        if case["answerable"] and not case.get("groups"):
            n += 1
            confirm(db, kb, str(case["text"]), ids[str(case["expected_sources"][0])], n)
    with support(kb, memory_refit="inline"):
        memory = memory_for(db, kb)
    assert memory is not None and len(memory) >= 50
    learned = memory.learning
    assert learned.questions >= 50 and learned.validation is not None
    # Whatever it learned, the search uses it only when it ranked better out of fold.
    assert (memory.ranker is not None) == (learned.validation.learned > learned.validation.fused)
