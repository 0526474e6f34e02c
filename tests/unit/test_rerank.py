"""The second-stage ranker (issue 21): its features, the shipped model, and ``kb train`` end to
end on two tiny generated sets with the real stack (Qdrant Edge, BM25, the hash embedder)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kb.cli.main import main
from kb.eval.datasets import load_dataset
from kb.eval.train import collect_candidates, fold_of, train, train_ranker
from kb.retrieval.answer import cross_features
from kb.retrieval.models import ChunkKind, ScoredChunk
from kb.retrieval.rerank import (
    DEFAULT_RANKER,
    MONOTONE,
    RANK_FEATURES,
    CandidateTerms,
    Ranker,
    TermsCache,
    candidate_features,
    cross_rerank,
    reorder,
)
from kb.retrieval.settings import EmbedderSettings, Settings
from tests.unit.passages import passage


def _passage(
    i: int, text: str, *, score: float, dense: float, kind: ChunkKind = "text"
) -> ScoredChunk:
    return passage(i, text, score, kind=kind, signals={"dense:e5": dense})


def _terms(text: str, title: str = "") -> CandidateTerms:
    return CandidateTerms(
        body=Counter(text.lower().split()),
        title=frozenset(title.lower().split()),
        question=frozenset(),
    )


def test_features_read_each_channel_and_the_rare_terms() -> None:
    texts = ["reset the router password", "router lights", "the password policy"]
    passages = [
        _passage(0, texts[0], score=0.5, dense=0.7),
        _passage(1, texts[1], score=0.9, dense=0.9),
        _passage(2, texts[2], score=0.4, dense=0.6),
    ]
    x = candidate_features(
        ["reset", "router", "password"],
        passages,
        [_terms(t) for t in texts],
        lang="en",
        dense_name="e5",
        max_fused=1.0,
    )
    assert x.shape == (3, len(RANK_FEATURES))
    col = {name: x[:, i] for i, name in enumerate(RANK_FEATURES)}
    assert list(col["fused_rank"]) == [0.0, 1.0, 2.0]
    assert list(col["dense_rank"]) == [1.0, 0.0, 2.0]
    assert col["coverage"][0] == 1.0 and col["coverage"][1] == pytest.approx(1 / 3)
    # "reset" is found in one candidate only: the first holds the rarest term, ranks first by
    # BM25, and misses nothing.
    assert col["bm25_rank"][0] == 0.0 and col["missing_idf_max"][0] == 0.0
    assert col["missing_idf_max"][1] == 1.0  # it misses the rarest term
    assert col["bm25_ratio"][0] == 1.0
    assert list(col["doc_share"]) == [pytest.approx(1 / 3)] * 3


def test_the_shipped_model_loads_and_orders_deterministically() -> None:
    ranker = Ranker.load(DEFAULT_RANKER)
    rng = np.random.default_rng(3)
    x = rng.random((20, len(RANK_FEATURES)))
    first, again = ranker.scores(x), Ranker.load(DEFAULT_RANKER).scores(x)
    assert first == again and len(set(first)) > 1
    passages = [_passage(i, "x", score=0.1, dense=0.1) for i in range(20)]
    ordered = reorder(passages, first)
    assert [p.signals["ranker"] for p in ordered] == sorted(first, reverse=True)


def _assert_monotone(ranker: Ranker) -> None:
    """Raising a feature of :data:`MONOTONE` alone never moves a score the other way."""
    x = np.random.default_rng(5).random((200, len(RANK_FEATURES)))
    x[:, RANK_FEATURES.index("fused_rank")] *= 50
    base = np.asarray(ranker.scores(x))
    for name, direction in MONOTONE.items():
        if name not in RANK_FEATURES:
            continue  # the question memory's own features (retrieval/domain.py)
        up = x.copy()
        up[:, RANK_FEATURES.index(name)] += 0.3 * abs(up[:, RANK_FEATURES.index(name)]).max()
        moved = (np.asarray(ranker.scores(up)) - base) * direction
        assert moved.min() >= -1e-9, f"raising {name} moved a score against its direction"


def test_the_shipped_model_never_ranks_a_better_candidate_lower() -> None:
    _assert_monotone(Ranker.load(DEFAULT_RANKER))


def test_a_model_of_other_features_is_refused() -> None:
    import lightgbm

    x = np.random.default_rng(1).random((40, 3))
    data = lightgbm.Dataset(x, [0, 1] * 20, group=[10] * 4, params={"verbose": -1})
    booster = lightgbm.train({"objective": "lambdarank", "verbosity": -1}, data, 2)
    with pytest.raises(ValueError, match="kb train"):
        Ranker(booster.model_to_string())


def _write_set(root: Path, name: str, seed: int) -> Path:
    """Forty devices, each with one colour and one port; questions ask one of the two facts,
    plus a few the corpus does not answer."""
    rng = random.Random(seed)
    colours = ["red", "blue", "green", "black", "white", "grey", "pink", "gold"]
    ports = ["usb", "hdmi", "ethernet", "serial", "audio", "display"]
    folder = root / name
    folder.mkdir()
    corpus, queries = [], []
    for i in range(40):
        device = f"{name}dev{i}"
        colour, port = rng.choice(colours), rng.choice(ports)
        corpus.append(
            {
                "id": f"{device}-c",
                "title": f"{device} colour",
                "text": f"The {device} casing is {colour}.",
            }
        )
        corpus.append(
            {
                "id": f"{device}-p",
                "title": f"{device} ports",
                "text": f"The {device} has one {port} port on the back.",
            }
        )
        queries.append(
            {
                "id": f"q{i}c",
                "text": f"What colour is the {device}?",
                "gold_ids": [f"{device}-c"],
                "answerable": True,
            }
        )
        queries.append(
            {
                "id": f"q{i}p",
                "text": f"Which port does the {device} have?",
                "gold_ids": [f"{device}-p"],
                "answerable": True,
            }
        )
    for i in range(6):
        queries.append(
            {
                "id": f"u{i}",
                "text": f"Does the {name}dev{i} support wireless charging?",
                "gold_ids": [],
                "answerable": False,
            }
        )
    for fname, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        (folder / fname).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("train")
    return root, [_write_set(root, "alpha", 1), _write_set(root, "beta", 2)]


def _settings(root: Path) -> Settings:
    return Settings(data_dir=root / "prod", embedder=EmbedderSettings(models=["hash"]))


def test_training_is_reproducible_and_learns_what_the_labels_say(tiny_sets) -> None:
    root, sets = tiny_sets
    rows = collect_candidates(load_dataset(sets[0]), _settings(root), cache=root / "cache")
    assert len(rows) == 86 and all(r.features.shape[1] == len(RANK_FEATURES) for r in rows)
    assert sum(1 for r in rows if any(r.labels)) >= 70  # BM25 finds most gold documents
    assert train_ranker(rows, rounds=30) == train_ranker(rows, rounds=30)
    _assert_monotone(Ranker(train_ranker(rows, rounds=30)))
    assert {fold_of(f"alpha/{r.question.id}") for r in rows} == set(range(5))


@pytest.mark.slow
def test_kb_train_writes_the_models_and_measures_them_on_unseen_questions(tiny_sets) -> None:
    root, sets = tiny_sets
    out = root / "trained"
    env = {"KB_DATA_DIR": str(root / "prod"), "KB_EMBEDDER__MODELS": '["hash"]'}
    result = CliRunner().invoke(
        main,
        ["train", str(sets[0]), str(sets[1]), "--out", str(out), "--cache", str(root / "cache")],
        env=env,
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["ranking"]) == {"alpha", "beta"}
    for entry in report["ranking"].values():
        assert {"fused", "other_sets_only", "kfold"} <= set(entry)
    assert set(report["answering_leave_one_set_out"]) == {"alpha", "beta"}
    model = json.loads((out / "answerability.json").read_text())
    assert 0.0 <= model["threshold"] <= 1.0 and "rank_top" in model["weights"]
    # The threshold holds the wrong-answer rate to the target, each set weighing the same.
    rates = [f["wrong_answer_rate"] or 0.0 for f in model["out_of_fold"].values()]
    assert sum(rates) / len(rates) <= 0.10
    # The written ranker serves: a knowledge base configured with it ranks with it.
    ranker = Ranker.load(out / "ranker.txt")
    assert ranker.scores(np.zeros((2, len(RANK_FEATURES)))) == ranker.scores(
        np.zeros((2, len(RANK_FEATURES)))
    )
    _ = train  # the function the command calls


def test_a_cross_encoder_reorders_only_the_candidates_it_reads() -> None:
    # A scorer that reads question and passage together; here, how often the passage says
    # "toner". The first three are reordered by it (ties keep their order), the fourth is not
    # read and stays fourth whatever it would have scored.
    passages = [
        _passage(0, "paper tray", score=0.9, dense=0.9),
        _passage(1, "toner toner", score=0.8, dense=0.8),
        _passage(2, "toner", score=0.7, dense=0.7),
        _passage(3, "toner toner toner", score=0.6, dense=0.6),
    ]
    read: list[str] = []

    def score(question: str, texts: list[str]) -> list[float]:
        read.extend(texts)
        return [float(t.count("toner")) for t in texts]

    ranked = cross_rerank(score, "replace the toner", passages, 3)
    assert [p.chunk.document_id for p in ranked] == ["d1", "d2", "d0", "d3"]
    assert [p.signals.get("cross") for p in ranked] == [2.0, 1.0, 0.0, None]
    assert [p.score for p in ranked] == [0.8, 0.7, 0.9, 0.6]  # fused scores kept
    assert read == [p.chunk.embed_text for p in passages[:3]]  # as the embedders see them
    features = cross_features(ranked)
    assert features == {"cross": 2.0, "cross_margin": 1.0}
    assert cross_features(passages) == {"cross": 0.0, "cross_margin": 0.0}


def test_a_candidates_terms_are_read_once_per_version() -> None:
    calls: list[str] = []

    def terms(text: str) -> list[str]:
        calls.append(text)
        return text.lower().split()

    cache = TermsCache(terms, size=2)
    first = _passage(0, "Toner toner", score=1.0, dense=1.0).chunk
    assert cache(first).body == Counter({"toner": 2}) and cache(first) is cache(first)
    assert len(calls) == 3  # body, title and location, Q&A question: once
    cache(_passage(1, "paper", score=1.0, dense=1.0).chunk)
    cache(_passage(2, "drum", score=1.0, dense=1.0).chunk)  # full: cleared, then cached
    cache(first)
    assert len(calls) == 12
