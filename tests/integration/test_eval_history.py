"""``kb eval --history --splits N`` end to end (eval/loop.py): each split replays its own
history through the product's feedback paths on the real store, models and database, and the
report pools the splits' test questions and lists each split's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb.eval.datasets import DatasetError
from kb.eval.loop import LoopOptions
from kb.eval.run import run_eval
from tests.integration.conftest import sample_settings

TOPICS = {
    "toner": ("Replacing the toner", "Open the front cover, pull out the old toner cartridge "
              "and push the new one in until it clicks."),
    "wifi": ("Connecting to Wi-Fi", "Open Settings, choose Network, pick your Wi-Fi network "
             "and enter its password."),
    "paper": ("Loading paper", "Pull out the main tray, fan the A4 sheets and load up to 250 "
              "of them face down."),
    "reset": ("Factory reset", "Hold the power and stop buttons for ten seconds to restore "
              "the factory settings."),
}  # fmt: skip
QUESTIONS = [
    ("How do I replace the toner cartridge?", "toner"),
    ("The toner is empty, how do I change it?", "toner"),
    ("How do I connect the printer to Wi-Fi?", "wifi"),
    ("How can I join my wireless network?", "wifi"),
    ("How do I load paper into the tray?", "paper"),
    ("How many sheets fit in the main tray?", "paper"),
    ("How do I restore the factory settings?", "reset"),
    ("How do I reset the printer completely?", "reset"),
    ("What is the cafeteria menu today?", None),
    ("How do I book a meeting room?", None),
]


def _folder(root: Path, history: bool = False) -> Path:
    folder = root / "printer_set"
    folder.mkdir()
    corpus = [{"id": k, "title": t, "text": body} for k, (t, body) in TOPICS.items()]
    queries = [
        {"id": f"q{i}", "text": text, "gold_ids": [gold] if gold else [], "answerable": bool(gold)}
        for i, (text, gold) in enumerate(QUESTIONS)
    ]
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    if history:
        (folder / "history.jsonl").write_text(json.dumps(queries[0]) + "\n", encoding="utf-8")
    return folder


def test_two_history_splits_are_replayed_and_pooled(tmp_path):
    settings = sample_settings(tmp_path / "prod")
    loop = LoopOptions(share=0.5, seed=3, splits=2, noise=0.0)
    run = run_eval(
        [_folder(tmp_path)], settings, out=tmp_path / "out", progress=False, plots=False, loop=loop
    )
    entry = run.report["datasets"]["printer_set"]
    splits = entry["history"]["splits"]
    assert [s["seed"] for s in splits] == [3, 4]
    lines = [json.loads(x) for x in (run.run_dir / "questions.jsonl").read_text().splitlines()]
    # Each split asks its own five test questions; the report pools all ten of them.
    assert sorted(d["split"] for d in lines) == [3] * 5 + [4] * 5
    assert {d["id"] for d in lines if d["split"] == 3} != {
        d["id"] for d in lines if d["split"] == 4
    }
    answerable = [sum(d["answerable"] for d in lines if d["split"] == s["seed"]) for s in splits]

    def pooled(key: str) -> float:
        """Right answers over answerable questions, summed over the splits."""
        rates = [s[key]["correct_deflection_rate"] for s in splits]
        right = [round(r * n) for r, n in zip(rates, answerable, strict=True)]
        return sum(right) / sum(answerable)

    assert entry["answering"]["correct_deflection_rate"] == pytest.approx(pooled("answering"))
    without_all = entry["without_history"]["answering"]
    without = without_all["correct_deflection_rate"]
    assert without == pytest.approx(pooled("without_history"))
    assert "2 splits pooled" in run.summary and "seed 4" in run.summary
    # What the loop could give: the splits' test questions whose gold a history question shares.
    room = entry["history"]["headroom"]
    assert room["answerable"] == sum(answerable)
    assert room["shared"] == sum(s["headroom"]["shared"] for s in splits) <= room["answerable"]
    assert room["without_wrong_rate"] == entry["without_history"]["answering"]["wrong_answer_rate"]
    assert f"headroom: {room['shared']} of {room['answerable']}" in run.summary
    assert room["first_without"] <= room["top3_without"] <= room["shared"]
    assert room["first_with"] <= room["shared"] and room["cited_with"] <= room["shared"]
    # The change on the same test questions, with its interval (a question per draw).
    gain = entry["history"]["gain"]
    for key in ("correct_deflection_rate", "wrong_answer_rate"):
        change = gain[key]["change"]
        if change is not None:
            assert change == pytest.approx(entry["answering"][key] - without_all[key], abs=1e-5)
            low, high = gain[key]["interval"]
            assert low <= change <= high
    assert gain["questions"] == len({d["id"] for d in lines})
    assert "95% interval" in run.summary


def test_a_history_file_is_one_split(tmp_path):
    settings = sample_settings(tmp_path / "prod")
    with pytest.raises(DatasetError, match="one history split"):
        run_eval(
            [_folder(tmp_path, history=True)],
            settings,
            out=tmp_path / "out",
            progress=False,
            plots=False,
            loop=LoopOptions(splits=2),
        )
    assert not (tmp_path / "out" / "cache").exists()  # refused before anything was indexed
