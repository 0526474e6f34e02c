"""The answer threshold read off calibration data for a target wrong-answer rate (issue 21,
item 2): the rule, the file, and the settings that apply it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from kb.eval.calibrate import FOLDS, calibrate, fit_confidence, fold_of
from kb.eval.train import choose_threshold
from kb.retrieval.calibration import (
    SHIPPED,
    AnswerSettings,
    Calibration,
    load_calibration,
    threshold_for,
)
from kb.retrieval.presets import TRAINED_ANSWERABILITY
from kb.retrieval.settings import RetrievalSettings, Settings


def test_the_lowest_threshold_whose_mean_wrong_rate_is_at_most_the_target() -> None:
    # Set a: right above 0.6, wrong below. Set b: one wrong at 0.9, right at 0.8 and 0.7.
    a = [(0.9, True), (0.8, True), (0.7, True), (0.5, False), (0.4, False)]
    b = [(0.9, False), (0.8, True), (0.7, True)]
    # At 0.7: a 0/3, b 1/3 -> mean 1/6; at 0.5: a 1/4, b 1/3 -> 0.29.
    assert threshold_for({"a": a, "b": b}, 0.2) == 0.7
    # At 0.9 b's only answer is wrong (1.0); above it both sets answer nothing (count 0).
    assert threshold_for({"a": a, "b": b}, 0.1) == 1.0
    # Every set at the target is not the rule: set a alone allows 0.7 at 0.0.
    assert threshold_for({"a": a}, 0.0) == 0.7
    with pytest.raises(ValueError, match="no questions"):
        threshold_for({"a": []}, 0.1)


def _brute_force(scored: list[tuple[str, float, bool, bool]], target: float) -> float:
    """The rule read literally: every candidate threshold, every set's rate recounted."""
    names = sorted({d for d, *_ in scored})
    for t in sorted({round(s, 4) for _d, s, _p, _a in scored}):
        rates = []
        for name in names:
            answered = [p for d, s, p, _a in scored if d == name and s >= t]
            rates.append(sum(not p for p in answered) / len(answered) if answered else 0.0)
        if sum(rates) / len(rates) <= target:
            return t
    return 1.0


def test_kb_train_and_the_settings_choose_by_the_same_rule() -> None:
    rng = random.Random(3)
    scored = [
        (name, round(rng.random(), rng.choice([2, 6])), rng.random() < 0.7, True)
        for name in "xyz"
        for _ in range(60)
    ]  # some scores tie, some fall between two 4-decimal candidates
    sets: dict[str, list[tuple[float, bool]]] = {}
    for name, score, positive, _ in scored:
        sets.setdefault(name, []).append((score, positive))
    for target in (0.0, 0.05, 0.2, 0.3, 0.6):
        expected = _brute_force(scored, target)
        assert choose_threshold(scored, target) == expected
        assert threshold_for(sets, target) == expected


def _labelled(rng: random.Random, n: int, shift: float) -> list[tuple[str, dict[str, float], bool]]:
    rows = []
    for i in range(n):
        right = rng.random() < 0.6
        cosine = rng.gauss(0.85 if right else 0.75, 0.05) + shift
        rows.append((f"q{i}", {"cosine": cosine}, right))
    return rows


def test_each_question_is_scored_by_a_model_that_never_saw_its_fold() -> None:
    rng = random.Random(11)
    sets = {"manual": _labelled(rng, 80, 0.0), "faq": _labelled(rng, 50, -0.05)}
    calibration = calibrate(sets, features=["cosine"])
    # The shipped model is the fit on everything (rounded as the settings keep it).
    everything = fit_confidence(
        [[(f, r) for _, f, r in rows] for rows in sets.values()], features=["cosine"]
    )
    assert calibration.bias == round(everything.bias, 3)
    for name, rows in sets.items():
        assert len(calibration.sets[name]) == len(rows)
        for (qid, feats, right), (score, kept) in zip(rows, calibration.sets[name], strict=True):
            fold = fold_of(f"{name}/{qid}")
            without = fit_confidence(
                [
                    [(f, r) for q, f, r in other if fold_of(f"{n}/{q}") != fold]
                    for n, other in sets.items()
                ],
                features=["cosine"],
            )
            assert kept is right
            assert score == pytest.approx(without.score(feats))
            assert score != pytest.approx(everything.score(feats), abs=1e-9)
    assert {fold_of(f"manual/q{i}") for i in range(80)} == set(range(FOLDS))


def test_the_file_round_trips_and_names_what_is_wrong(tmp_path: Path) -> None:
    calibration = Calibration(
        bias=-2.0, weights=(("cosine", 3.0),), sets={"a": ((0.9, True), (0.2, False))}
    )
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(calibration.to_dict()))
    loaded = load_calibration(path)
    assert loaded == calibration
    assert loaded.fits(-2.0004, {"cosine": 3.0}) and not loaded.fits(-2.0, {"cosine": 3.1})
    assert not loaded.fits(-2.0, {"cosine": 3.0, "coverage": 0.0})
    path.write_text(json.dumps({"bias": 1.0}))  # changed on disk: read again
    with pytest.raises(ValueError, match=r"is not a calibration file \('weights'\)"):
        load_calibration(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_calibration(tmp_path / "missing.json")


def test_a_target_wrong_rate_sets_the_threshold_from_the_shipped_calibration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shipped = load_calibration(SHIPPED)
    default = RetrievalSettings()
    # The shipped calibration was computed for the confidence model the settings ship with.
    assert shipped.fits(default.confidence_bias, default.confidence_weights)
    # No target (the default): the configured threshold.
    assert Settings().retrieval.confidence_threshold == default.confidence_threshold
    monkeypatch.setenv("KB_ANSWER__TARGET_WRONG_RATE", "0.10")
    at_10 = Settings().retrieval.confidence_threshold
    assert at_10 == threshold_for(shipped.sets, 0.10) != default.confidence_threshold
    monkeypatch.setenv("KB_ANSWER__TARGET_WRONG_RATE", "0.25")
    assert Settings().retrieval.confidence_threshold < at_10
    # What a threshold set by hand, or a model file's, says stands.
    monkeypatch.setenv("KB_RETRIEVAL__CONFIDENCE_THRESHOLD", "0.5")
    assert Settings().retrieval.confidence_threshold == 0.5
    monkeypatch.delenv("KB_RETRIEVAL__CONFIDENCE_THRESHOLD")
    trained = json.loads(TRAINED_ANSWERABILITY.read_text(encoding="utf-8"))
    builtin = Settings(retrieval=RetrievalSettings(answerability="builtin"))
    assert builtin.retrieval.confidence_threshold == trained["threshold"]
    with pytest.raises(ValueError, match="target_wrong_rate"):
        AnswerSettings(target_wrong_rate=1.5)


def test_weights_the_calibration_was_not_computed_for_need_a_threshold_or_a_file(
    tmp_path: Path,
) -> None:
    own = RetrievalSettings(confidence_bias=-1.0, confidence_weights={"cosine": 2.0})
    Settings(retrieval=own)  # no target: nothing to read off a calibration
    with pytest.raises(ValueError, match="computed for another confidence model"):
        Settings(retrieval=own, answer=AnswerSettings(target_wrong_rate=0.1))
    path = tmp_path / "own.json"
    points = ((0.9, True), (0.8, True), (0.6, False), (0.3, False))
    path.write_text(json.dumps(Calibration(-1.0, (("cosine", 2.0),), {"own": points}).to_dict()))
    answer = AnswerSettings(target_wrong_rate=0.1, calibration=path)
    assert Settings(retrieval=own, answer=answer).retrieval.confidence_threshold == 0.8
    hand = RetrievalSettings(confidence_bias=-1.0, confidence_weights={"cosine": 2.0},
                             confidence_threshold=0.7)  # fmt: skip
    assert Settings(retrieval=hand, answer=answer).retrieval.confidence_threshold == 0.7
