"""The question memory relearns in the background (issue 22): a question never waits for the
leave-one-out fit, yet matches new confirmed answers at once; ``support.memory_refit=inline``
(what ``kb eval --history`` uses) fits before answering."""

from __future__ import annotations

import numpy as np
import pytest

from kb.db.engine import Database
from kb.db.models import MemoryEntry
from kb.retrieval.service import KnowledgeBase
from kb.services.memory_read import memory_for, wait_for_refit

pytestmark = pytest.mark.integration

TOPICS = 12
PER_TOPIC = 6


def confirm(db: Database, kb: KnowledgeBase, rng: np.random.Generator, topic: int, n: int) -> None:
    """``n`` staff-confirmed questions close to ``topic`` (cosine about 0.95 to each other),
    half pointing to one passage and half to another, so that leave one out sees both
    outcomes."""
    dim = kb.embedders[0].dim
    centre = np.random.default_rng(topic).normal(size=dim)
    with db.session() as s:
        for i in range(n):
            vector = centre / np.linalg.norm(centre) + rng.normal(size=dim) * 0.2 / np.sqrt(dim)
            doc = f"doc-{topic}-{i % 2}"
            s.add(
                MemoryEntry(
                    kind="pair",
                    how="staff_link",
                    question=f"question {topic}.{i}",
                    embedder=kb.embedders[0].name,
                    vector=[float(v) for v in vector],
                    terms=[f"topic{topic}", f"word{i}"],
                    document_id=doc,
                    chunk_id=f"{doc}-chunk",
                    confirmed_by="staff-1",
                    staff=True,
                )
            )
        s.commit()


def test_new_entries_match_at_once_with_the_previous_weights_while_a_refit_runs(
    sample_kb: tuple[KnowledgeBase, Database, object], db: Database
) -> None:
    kb, _, _ = sample_kb
    assert kb.settings.support.memory_refit == "background"
    rng = np.random.default_rng(0)
    for topic in range(TOPICS):
        confirm(db, kb, rng, topic, PER_TOPIC)

    first = memory_for(db, kb)
    assert first is not None and len(first) == TOPICS * PER_TOPIC
    assert not first.model.fitted  # the prior stands in while the first fit runs
    assert wait_for_refit(120)
    fitted = memory_for(db, kb)
    assert fitted is not None and len(fitted) == TOPICS * PER_TOPIC and fitted.model.fitted

    confirm(db, kb, rng, TOPICS, 1)  # a confirmation on a new topic
    grown = memory_for(db, kb)
    assert grown is not None and len(grown) == TOPICS * PER_TOPIC + 1
    assert grown.model == fitted.model  # matched at once, with the weights it had
    assert wait_for_refit(120)
    refitted = memory_for(db, kb)
    assert refitted is not None and len(refitted) == len(grown)
    assert refitted.model.fitted and refitted.model.samples >= fitted.model.samples
    assert memory_for(db, kb) is refitted  # nothing changed: no rebuild


def test_inline_refit_answers_with_weights_learned_from_every_entry(
    sample_kb: tuple[KnowledgeBase, Database, object], db: Database
) -> None:
    kb, _, _ = sample_kb
    rng = np.random.default_rng(1)
    for topic in range(TOPICS):
        confirm(db, kb, rng, topic, PER_TOPIC)
    saved = kb.settings
    kb.settings = saved.model_copy(
        update={"support": saved.support.model_copy(update={"memory_refit": "inline"})}
    )
    try:
        memory = memory_for(db, kb)
    finally:
        kb.settings = saved
    assert memory is not None and len(memory) == TOPICS * PER_TOPIC and memory.model.fitted
