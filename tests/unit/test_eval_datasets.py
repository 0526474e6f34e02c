"""Dataset loading on tiny files written by the tests (the shared sets are never read here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kb.eval.datasets import (
    DatasetError,
    find_corpus_dir,
    load_dataset,
    looks_like_faq,
    normalize_relpath,
    read_corpus,
)


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_record_set(tmp_path: Path) -> None:
    folder = tmp_path / "manual_en"
    _jsonl(folder / "corpus.jsonl", [{"id": "s1", "title": "Setup", "text": "Plug it in."}])
    _jsonl(
        folder / "queries.jsonl",
        [
            {"id": "1", "text": "How?", "gold_ids": ["s1"], "answerable": True,
             "subset": "normal", "gold_answer_bigram_containment": 0.4, "answer": "Plug it in."},
            {"id": "2", "text": "Camera?", "gold_ids": [], "answerable": False},
            {"id": "3", "text": "Fee?", "gold_ids": ["s1"], "answerable": True,
             "graded_qrels": {"s1": 2, "s2": 1}},
        ],
    )  # fmt: skip
    ds = load_dataset(folder)
    assert ds.name == "manual_en" and ds.kind == "records" and len(ds.questions) == 3
    q1, q2, q3 = ds.questions
    assert q1.gold_ids == ("s1",) and q1.subset == "normal" and q1.clean_gold is False
    assert q1.answer == "Plug it in."
    assert not q2.answerable and q2.clean_gold is None
    assert q3.gains() == {"s1": 2.0, "s2": 1.0}
    (doc,) = ds.records()
    assert (doc.id, doc.title, doc.text, doc.kind) == ("s1", "Setup", "Plug it in.", "text")


def test_project_questions_extend_a_dataset_folder(tmp_path: Path) -> None:
    folder = tmp_path / "manual_en"
    _jsonl(folder / "corpus.jsonl", [{"id": "s1", "title": "Setup", "text": "Plug it in."}])
    _jsonl(folder / "queries.jsonl", [{"id": "1", "text": "How?", "gold_ids": ["s1"]}])
    extra = tmp_path / "extra"
    oos = {"id": "oos-1", "text": "Fingerprint?", "answerable": False, "subset": "out_of_scope"}
    _jsonl(extra / "manual_en.jsonl", [oos])
    ds = load_dataset(folder, extra_dir=extra)
    assert [(q.id, q.answerable, q.subset) for q in ds.questions] == [
        ("1", True, None),
        ("oos-1", False, "out_of_scope"),
    ]
    assert len(load_dataset(folder, extra_dir=None).questions) == 1
    assert len(load_dataset(folder, extra_dir=tmp_path / "none").questions) == 1
    _jsonl(extra / "manual_en.jsonl", [{"id": "1", "text": "Again?"}])
    with pytest.raises(DatasetError, match=r"manual_en.jsonl: question id '1' is already"):
        load_dataset(folder, extra_dir=extra)


def test_the_project_adds_out_of_scope_questions_to_the_english_manual() -> None:
    from kb.eval.datasets import EXTRA_QUESTIONS

    rows = [json.loads(line) for line in (EXTRA_QUESTIONS / "emanual_tv.jsonl").open()]
    assert len(rows) >= 50 and not any(r["answerable"] for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)


def test_faq_corpus_records_are_qa(tmp_path: Path) -> None:
    folder = tmp_path / "faq_ja"
    _jsonl(
        folder / "corpus.jsonl",
        [
            {"id": "1", "title": "住民票はどこで取れますか？", "text": "市役所の窓口です。"},
            {"id": "2", "title": "転入の手続きを知りたい。", "text": "転入届を出します。"},
            {"id": "3", "title": "ごみの出し方", "text": "月曜日です。"},
        ],
    )
    _jsonl(folder / "queries.jsonl", [{"id": "q", "text": "住民票", "gold_ids": ["1"]}])
    ds = load_dataset(folder)
    assert [d.kind for d in ds.records()] == ["qa", "qa", "qa"]  # 2 of 3 titles end like one
    assert ds.questions[0].answerable  # defaults to "has gold"
    forced = load_dataset(folder, doc_kind="text")
    assert {d.kind for d in forced.records()} == {"text"}
    assert forced.corpus_hash() != ds.corpus_hash()  # the kind is part of the index key


def test_looks_like_faq() -> None:
    assert looks_like_faq(["How do I pair?", "Setup", "市外から転入するには？（転入届）"])
    assert not looks_like_faq(["Quick Guides", "Using Smart Hub", "Why?"])
    assert not looks_like_faq([])


def test_record_kind_per_line(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "corpus.jsonl",
        [
            {"id": 1, "title": "Setup", "text": "a", "kind": "qa"},
            {"id": 2, "title": "B", "text": "b"},
        ],
    )
    assert [(d.id, d.kind) for d in read_corpus(path)] == [("1", "qa"), ("2", "text")]


def test_corpus_hash_follows_content(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    _jsonl(folder / "corpus.jsonl", [{"id": "1", "title": "t", "text": "a"}])
    _jsonl(folder / "queries.jsonl", [{"id": "q", "text": "?", "gold_ids": ["1"]}])
    before = load_dataset(folder).corpus_hash()
    assert load_dataset(folder).corpus_hash() == before
    _jsonl(folder / "corpus.jsonl", [{"id": "1", "title": "t", "text": "b"}])
    assert load_dataset(folder).corpus_hash() != before


def test_cases_file_finds_docs_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "docs_corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("A", encoding="utf-8")
    cases = _jsonl(
        tmp_path / "eval" / "cases" / "sample.jsonl",
        [
            {"id": "c1", "text": "VPN の設定は？", "lang": "ja", "answerable": True,
             "expected_sources": ["./it/vpn.md"], "groups": ["staff"]},
            {"id": "c2", "text": "Lunch menu?", "lang": "en", "answerable": False,
             "expected_sources": [], "groups": [], "kind": "workplace"},
        ],
    )  # fmt: skip
    assert find_corpus_dir(cases) == corpus
    ds = load_dataset(cases)
    assert (ds.name, ds.kind, ds.corpus) == ("sample", "folder", corpus)
    c1, c2 = ds.questions
    assert c1.gold_ids == ("it/vpn.md",) and c1.groups == ("staff",) and c1.lang == "ja"
    assert not c2.answerable and c2.gold_ids == ()
    assert (c1.subset, c2.subset) == (None, "workplace")  # a case's kind is its subset
    h = ds.corpus_hash()
    (corpus / "b.md").write_text("B", encoding="utf-8")
    assert ds.corpus_hash() != h
    with pytest.raises(DatasetError, match="no records"):
        ds.records()


def test_cases_file_without_corpus(tmp_path: Path) -> None:
    cases = _jsonl(tmp_path / "x.jsonl", [{"id": "1", "text": "?"}])
    with pytest.raises(DatasetError, match="docs_corpus"):
        load_dataset(cases)
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert load_dataset(cases, corpus_dir=other).corpus == other


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"text": "no id"}', "needs 'id' and 'text'"),
        ('{"id": "1", "text": "x", "lang": "fr"}', "'lang' must be"),
        ('{"id": "1", "text": "x", "graded_qrels": [1]}', "graded_qrels"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    folder = tmp_path / "bad"
    _jsonl(folder / "corpus.jsonl", [])
    (folder / "queries.jsonl").write_text('{"id": "ok", "text": "fine"}\n\n' + line + "\n", "utf-8")
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(folder)
    assert "queries.jsonl:3" in str(info.value)


def test_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="missing corpus.jsonl"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no such dataset"):
        load_dataset(tmp_path / "nope")


def test_normalize_relpath() -> None:
    assert normalize_relpath("./a/./b.md") == "a/b.md"
    assert normalize_relpath("\\a\\b.md") == "a/b.md"
    assert normalize_relpath("/a.md") == "a.md"
