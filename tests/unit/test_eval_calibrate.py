"""Refitting the confidence model: the logistic fit itself, and collecting features from a real
knowledge base (Qdrant Edge, BM25, the deterministic hash embedder) on a tiny dataset."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from kb.eval.calibrate import collect, fit_confidence, main
from kb.eval.datasets import load_dataset
from kb.retrieval.answer import FEATURES
from kb.retrieval.calibration import load_calibration
from kb.retrieval.settings import EmbedderSettings, Settings


def test_fit_separates_what_a_feature_separates() -> None:
    rng = random.Random(7)
    rows = [({"cosine": 0.9 + rng.uniform(-0.05, 0.05)}, True) for _ in range(40)]
    rows += [({"cosine": 0.7 + rng.uniform(-0.05, 0.05)}, False) for _ in range(40)]
    model = fit_confidence([rows], features=["cosine"])
    assert dict(model.weights)["cosine"] > 0
    assert model.score({"cosine": 0.92}) > 0.9 > 0.1 > model.score({"cosine": 0.68})


def test_each_dataset_weighs_the_same_however_many_questions_it_has() -> None:
    big = [({"coverage": 1.0}, True)] * 90 + [({"coverage": 0.0}, False)] * 10
    small = [({"coverage": 1.0}, False)] * 5 + [({"coverage": 0.0}, True)] * 5
    model = fit_confidence([big, small], features=["coverage"])
    # pooled, the big set would decide alone; weighted, the small set pulls the weight down
    pooled = fit_confidence([big + small], features=["coverage"])
    assert dict(model.weights)["coverage"] < dict(pooled.weights)["coverage"]


def _write_set(root: Path) -> Path:
    folder = root / "tiny_set"
    folder.mkdir()
    corpus = [
        {"id": "d1", "title": "Pairing", "text": "The remote pairs automatically with the TV."},
        {"id": "d2", "title": "Smart Hub", "text": "Press Home to open Smart Hub."},
    ]
    queries = [
        {"id": "q1", "text": "How does the remote pair?", "gold_ids": ["d1"], "answerable": True},
        {"id": "q2", "text": "How do I open Smart Hub?", "gold_ids": ["d2"], "answerable": True},
        {"id": "q3", "text": "Does it have a camera?", "gold_ids": [], "answerable": False},
    ]
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def test_collect_asks_every_question_with_the_real_stack(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "prod", embedder=EmbedderSettings(models=["hash"]))
    rows = collect(load_dataset(_write_set(tmp_path)), settings, cache=tmp_path / "cache")
    assert [r["id"] for r in rows] == ["q1", "q2", "q3"]
    assert set(rows[0]["features"]) >= set(FEATURES)
    by_id = {r["id"]: r for r in rows}
    # BM25 finds the gold document of both answerable questions; the third can't be positive
    assert by_id["q2"]["positive"] is True
    assert by_id["q3"]["positive"] is False and by_id["q3"]["answerable"] is False
    assert all(r["passages"] and "signals" in r["passages"][0] for r in rows)
    # the production data folder was never touched: the index lives in the cache
    assert not (tmp_path / "prod").exists()
    assert any((tmp_path / "cache").glob("tiny_set-*"))


def test_main_prints_the_settings_and_writes_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "prod"))
    monkeypatch.setenv("KB_EMBEDDER__MODELS", '["hash"]')
    folder = _write_set(tmp_path)
    rows_file = tmp_path / "rows.jsonl"
    main([str(folder), "--cache", str(tmp_path / "cache"), "--rows", str(rows_file)])
    printed = json.loads(capsys.readouterr().out)
    # The features the configured model weighs, refitted.
    assert printed["KB_RETRIEVAL__CONFIDENCE_WEIGHTS"].keys() == (
        Settings().retrieval.confidence_weights.keys()
    )
    assert isinstance(printed["KB_RETRIEVAL__CONFIDENCE_BIAS"], float)
    assert len(rows_file.read_text(encoding="utf-8").splitlines()) == 3
    written = tmp_path / "calibration.json"
    main([str(folder), "--cache", str(tmp_path / "cache"), "--write", str(written)])
    printed = json.loads(capsys.readouterr().out)
    assert printed["KB_ANSWER__CALIBRATION"] == str(written)
    calibration = load_calibration(written)
    assert calibration.bias == printed["KB_RETRIEVAL__CONFIDENCE_BIAS"]
    assert [len(p) for p in calibration.sets.values()] == [3]  # every question, one set
    assert printed["threshold_at_target_wrong_rate"]["0.1"] == calibration.threshold(0.1)
    main([str(folder), "--cache", str(tmp_path / "cache"), "--features", "cosine,minmax_top"])
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["KB_RETRIEVAL__CONFIDENCE_WEIGHTS"]) == {"cosine", "minmax_top"}
    with pytest.raises(SystemExit):
        main([str(folder), "--cache", str(tmp_path / "cache"), "--features", "cosine,colour"])
    assert "unknown feature(s) colour" in capsys.readouterr().err
