"""Term proximity (issue 21): the question's adjacent words, held side by side by a passage,
reorder the fused candidates; read with the real analyser."""

from __future__ import annotations

from dataclasses import replace

from kb.retrieval.models import Chunk, Location
from kb.retrieval.proximity import (
    PairsCache,
    adjacent,
    by_proximity,
    pair_weights,
    pairs,
    proximity,
)
from kb.retrieval.sparse import BM25Encoder
from tests.unit.passages import passage as _passage

ENCODER = BM25Encoder()


def _held(chunk: Chunk) -> set[tuple[str, str]]:
    return adjacent(ENCODER.sequence(chunk.text))


def _words(chunk: Chunk) -> set[str]:
    return set(ENCODER.terms(chunk.text))


def test_the_pairs_are_the_questions_neighbouring_terms_in_order() -> None:
    wanted = pairs(["turn", "2", "side", "print"])
    assert wanted == [("turn", "2"), ("2", "side"), ("side", "print")]
    assert pairs(["a", "a", "b", "a", "b"]) == [("a", "b"), ("b", "a")]
    assert pairs(["print"]) == []
    held = adjacent(["automat", "2", "side", "print", "default"])
    assert proximity(dict.fromkeys(wanted, 1.0), held) == 2 / 3
    assert proximity({}, held) == 0.0


def test_a_pair_weighs_as_rare_as_its_terms_are_among_the_candidates() -> None:
    # Every candidate names the product: a passage holding "Aster MF-3400" whole gains little.
    found = [{"aster", "mf", "width", "depth"}, *({"aster", "mf"} for _ in range(9))]
    weights = pair_weights([("width", "depth"), ("aster", "mf"), ("depth", "aster")], found)
    assert weights[("aster", "mf")] < weights[("depth", "aster")] < weights[("width", "depth")]
    assert weights[("aster", "mf")] < weights[("width", "depth")] / 2


def test_a_passage_writing_the_question_s_words_together_comes_first() -> None:
    # BM25 put the power switch first: it holds "turn", "side" and "print" apart.
    switch = _passage(0, "To turn the machine on, press the power switch on the left side.", 0.6)
    duplex = _passage(1, "Automatic 2-sided printing is on by default in the driver.", 0.5)
    terms = [t for t, kind in ENCODER.question_terms("How do I turn on 2-sided printing?")]
    ordered = by_proximity([switch, duplex], terms, _held, _words, weight=1.0)
    assert [p.chunk.document_id for p in ordered] == ["d1", "d0"]
    share = ordered[0].signals["proximity"]  # "2 side", "side print"; not "turn 2"
    assert 0.5 < share < 1.0
    assert ordered[0].score == 0.5 + share
    assert ordered[1].signals["proximity"] == 0.0
    # The fused signals stay as they were: the confidence reads them.
    assert ordered[0].signals["fused"] == 0.5


def test_one_term_no_weight_or_a_tie_keeps_the_fused_order() -> None:
    a = _passage(0, "Printing speed is 34 pages per minute.", 0.6)
    b = _passage(1, "Printing on envelopes needs the bypass tray.", 0.5)
    assert by_proximity([a, b], ["print"], _held, _words, weight=1.0) == [a, b]
    assert by_proximity([a, b], ["envelop", "bypass"], _held, _words, weight=0.0) == [a, b]
    c = _passage(2, "Print speed: 34 pages per minute.", 0.6)
    d = _passage(3, "Print speed on envelopes: 10 pages per minute.", 0.5)
    ordered = by_proximity([c, d], ["print", "speed"], _held, _words, weight=1.0)
    assert [p.chunk.document_id for p in ordered] == ["d2", "d3"]  # both hold it: fused order


def test_each_chunk_version_is_read_once_with_its_title_and_headings() -> None:
    read: list[str] = []

    def sequence(text: str) -> list[str]:
        read.append(text)
        return ENCODER.sequence(text)

    cache = PairsCache(sequence, size=2)
    chunk = _passage(0, "Tap Home > Scan > Email.", 0.5).chunk
    first = replace(chunk, title="User Guide", location=Location(heading_path=("Scan to email",)))
    pairs_held = {("tap", "home"), ("home", "scan"), ("scan", "email"), ("user", "guid")}
    assert cache(first) == pairs_held
    assert cache(first) == pairs_held
    assert read.count("Tap Home > Scan > Email.") == 1
    for i in (1, 2):  # full: cleared, then filled again
        cache(_passage(i, f"Text {i} here.", 0.1).chunk)
    cache(first)
    assert read.count("Tap Home > Scan > Email.") == 2
