"""The orchestration against a scripted fake knowledge base: indexing once, asking through
``ask`` with the gate open, scoring, reports, history, variants. No models, no store."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kb.eval.datasets import CorpusDoc, EvalDataset, load_dataset
from kb.eval.run import (
    DEFAULT_VARIANT,
    Backend,
    DocKeys,
    EvalError,
    Variant,
    apply_overrides,
    cited_texts,
    data_dir_for,
    eval_settings,
    parse_variants,
    public_settings,
    run_eval,
)
from kb.ingest.sources import document_id_for
from kb.retrieval.calibration import SHIPPED, load_calibration
from kb.retrieval.models import AccessFilter
from kb.retrieval.settings import EmbedderSettings, RetrievalSettings, Settings

# --- a scripted knowledge base ------------------------------------------------------------------


@dataclass
class FakeChunk:
    document_id: str
    text: str
    source_path: str = ""

    @property
    def point_id(self) -> str:
        return f"p-{self.document_id}-{self.text[:8]}"


@dataclass
class FakePassage:
    chunk: FakeChunk
    score: float = 1.0


@dataclass
class FakeCitation:
    n: int
    document_id: str
    chunk_id: str
    snippet: str
    source_path: str = ""


@dataclass
class FakeAnswer:
    status: str
    answer: str
    citations: list[FakeCitation]
    confidence: float
    passages: list[FakePassage]
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Script:
    """question text -> (passages, confidence, number of the passage the answer quotes)."""

    answers: dict[str, tuple[list[FakeChunk], float, int | None]]
    opened: list[Settings] = field(default_factory=list)
    indexed: list[list[Any]] = field(default_factory=list)
    synced: list[Path] = field(default_factory=list)
    acls: list[AccessFilter] = field(default_factory=list)
    depths: list[int | None] = field(default_factory=list)
    closed: int = 0

    def backend(self) -> Backend:
        return Backend(open_kb=self.open, ingestor=lambda kb: FakeIngestor(self), record=_record)

    def open(self, settings: Settings) -> FakeKB:
        self.opened.append(settings)
        return FakeKB(self, settings)


def _record(doc: CorpusDoc) -> tuple[str, str, str, str]:
    return (doc.id, doc.title, doc.text, doc.kind)


class FakeIngestor:
    def __init__(self, script: Script) -> None:
        self.script = script

    def index_records(self, records: Any, *, source: str) -> str:
        assert source == "eval:tiny_set"
        self.script.indexed.append(list(records))
        return "indexed"

    def sync_folder(self, path: Path) -> str:
        self.script.synced.append(path)
        return "synced"


class FakeKB:
    def __init__(self, script: Script, settings: Settings) -> None:
        self.script, self.settings = script, settings

    def ask(
        self,
        question: str,
        *,
        acl: AccessFilter,
        lang: str | None = None,
        depth: int | None = None,
    ) -> FakeAnswer:
        self.script.acls.append(acl)
        self.script.depths.append(depth)
        if question == "boom":
            raise RuntimeError("store unavailable")
        chunks, confidence, quoted = self.script.answers[question]
        passages = [FakePassage(c) for c in chunks]
        gate = self.settings.retrieval.confidence_threshold
        if quoted is None or confidence < gate:
            return FakeAnswer("escalated", "passed to support", [], confidence, passages)
        chunk = chunks[quoted]
        cite = FakeCitation(1, chunk.document_id, chunk.point_id, "snip", chunk.source_path)
        return FakeAnswer("answered", f"{chunk.text} [1]", [cite], confidence, passages)

    def close(self) -> None:
        self.script.closed += 1


# --- a tiny record set ------------------------------------------------------------------------

D1a = FakeChunk("d1", "The remote pairs automatically.")
D1b = FakeChunk("d1", "Point it at the sensor.")
D2 = FakeChunk("d2", "Press Home to open Smart Hub.")
D3 = FakeChunk("d3", "Ambient mode shows art.")


def _write_set(root: Path) -> Path:
    folder = root / "tiny_set"
    folder.mkdir()
    corpus = [
        {"id": "d1", "title": "Pairing", "text": "The remote pairs automatically."},
        {"id": "d2", "title": "Smart Hub", "text": "Press Home to open Smart Hub."},
        {"id": "d3", "title": "Ambient", "text": "Ambient mode shows art."},
    ]
    queries = [
        {"id": "q1", "text": "How do I pair?", "gold_ids": ["d1"], "answerable": True},
        {"id": "q2", "text": "Open Smart Hub?", "gold_ids": ["d2"], "answerable": True},
        {"id": "q3", "text": "Camera?", "gold_ids": [], "answerable": False},
        {"id": "q4", "text": "boom", "gold_ids": ["d3"], "answerable": True},
    ]
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def _script() -> Script:
    return Script(
        answers={
            "How do I pair?": ([D1a, D1b, D2], 0.9, 0),  # right document, quoted
            "Open Smart Hub?": ([D3, D2], 0.6, 0),  # quotes the wrong document
            "Camera?": ([D3], 0.3, 0),  # out of scope, low confidence
        }
    )


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "prod",
        embedder=EmbedderSettings(models=["hash"]),
        retrieval=RetrievalSettings(confidence_threshold=0.5),
    )


def test_run_eval_end_to_end(tmp_path: Path) -> None:
    folder, script, out = _write_set(tmp_path), _script(), tmp_path / "out"
    run = run_eval([folder], _settings(tmp_path), out=out, backend=script.backend(), progress=False)
    entry = run.report["datasets"]["tiny_set"]
    # retrieval over q1 q2 q4: q1 [d1 d2] R@1 1; q2 [d3 d2] R@1 0 R@5 1 RR 1/2; q4 raised: 0
    assert entry["retrieval"]["recall@1"] == pytest.approx(1 / 3, abs=1e-6)
    assert entry["retrieval"]["recall@5"] == pytest.approx(2 / 3, abs=1e-6)
    assert entry["retrieval"]["mrr@10"] == pytest.approx(0.5)  # (1 + 1/2 + 0) / 3
    # configured threshold 0.5 applied after the fact: q1 (.9) and q2 (.6) answered
    ans = entry["answering"]
    assert ans["threshold"] == 0.5
    assert ans["deflection_rate"] == 0.5  # 2 of 4
    assert ans["correct_deflection_rate"] == pytest.approx(1 / 3, abs=1e-6)  # q1 of q1 q2 q4
    assert ans["wrong_answer_rate"] == 0.5  # q2 of q1 q2
    assert ans["escalation_recall"] == 1.0  # q3 (.3) escalated
    assert ans["auroc"] == 1.0  # .9 .6 vs .3
    assert entry["faithfulness"] == 1.0  # both answers quote their cited passage
    assert entry["questions"] == 4 and entry["errors"] == 1
    assert entry["error_examples"] == ["RuntimeError: store unavailable"]
    assert entry["chosen_threshold"]["threshold"] == 0.9  # 0.6 lets q2's wrong answer in
    assert entry["index_reused"] is False and entry["index_seconds"] >= 0
    # the KB was asked with the gate open, deep enough, in its own store; then closed. The
    # answer settings stay the configured ones: the depth is asked per question.
    (opened,) = script.opened
    assert opened.retrieval.confidence_threshold == 0.0
    assert opened.retrieval.top_k == 8 and set(script.depths) == {30}
    assert opened.data_dir.parent == out / "cache" and opened.data_dir.name.startswith("tiny_set-")
    assert opened.qdrant.url is None and opened.database_url is None
    assert opened.embedding_cache == out / "cache" / "embeddings.sqlite3"
    assert script.closed == 1
    assert [r[0] for r in script.indexed[0]] == ["d1", "d2", "d3"]
    # files: the run folder, the latest copies, the per-question log, the history
    assert (run.run_dir / "report.json").is_file() and (out / "report.html").is_file()
    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == run.report
    lines = (run.run_dir / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    logged = {d["id"]: d for d in map(json.loads, lines)}
    assert logged["q1"]["ranked"] == ["d1", "d2"] and logged["q1"]["answered"] is True
    assert logged["q3"]["answered"] is False  # answered by the probe, gated afterwards
    assert logged["q4"]["error"] == "RuntimeError: store unavailable"
    assert len((out / "history.jsonl").read_text(encoding="utf-8").splitlines()) == 1
    assert "tiny_set" in run.summary and run.comparison is None
    assert run.report["run"]["settings"]["kb"]["retrieval"]["confidence_threshold"] == 0.5


def test_rerun_reuses_index_and_compares(tmp_path: Path) -> None:
    folder, script, out = _write_set(tmp_path), _script(), tmp_path / "out"
    first = run_eval(
        [folder], _settings(tmp_path), out=out, backend=script.backend(), progress=False
    )
    second = run_eval(
        [folder],
        _settings(tmp_path),
        out=out,
        backend=script.backend(),
        progress=False,
        compare_previous=True,
    )
    assert len(script.indexed) == 1  # indexed once
    entry = second.report["datasets"]["tiny_set"]
    assert entry["index_reused"] is True
    assert entry["index_seconds"] == first.report["datasets"]["tiny_set"]["index_seconds"]
    assert second.run_dir != first.run_dir
    assert second.comparison is not None and "+0.000" in second.comparison
    assert second.comparison in second.summary
    # a changed corpus gets a new index folder
    with (folder / "corpus.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "d4", "title": "New", "text": "New text."}) + "\n")
    run_eval([folder], _settings(tmp_path), out=out, backend=script.backend(), progress=False)
    assert len(script.indexed) == 2
    assert script.opened[-1].data_dir != script.opened[0].data_dir


def test_half_built_index_is_rebuilt(tmp_path: Path) -> None:
    folder, script, out = _write_set(tmp_path), _script(), tmp_path / "out"
    settings = _settings(tmp_path)
    dataset = load_dataset(folder)
    stale = data_dir_for(out / "cache", dataset, settings, dataset.corpus_hash())
    stale.mkdir(parents=True)
    (stale / "leftover").write_text("x")
    run_eval([folder], settings, out=out, backend=script.backend(), progress=False, plots=False)
    assert len(script.indexed) == 1 and not (stale / "leftover").exists()


def test_a_new_term_analyzer_builds_a_new_index(tmp_path: Path, monkeypatch) -> None:
    # The analyzer decides the stored BM25 vectors: an index built by another one is not reused.
    dataset, settings = load_dataset(_write_set(tmp_path)), _settings(tmp_path)
    before = data_dir_for(tmp_path, dataset, settings, dataset.corpus_hash())
    monkeypatch.setattr("kb.eval.index.ANALYZER_VERSION", 99)
    assert data_dir_for(tmp_path, dataset, settings, dataset.corpus_hash()) != before


def test_variants_each_get_a_row(tmp_path: Path) -> None:
    folder, script, out = _write_set(tmp_path), _script(), tmp_path / "out"
    settings = _settings(tmp_path)
    variants = parse_variants(["bm25 dense", "hybrid"], settings)
    assert [v.name for v in variants] == ["bm25", "dense-hash", "hybrid"]
    run = run_eval(
        [folder], settings, out=out, variants=variants, backend=script.backend(), progress=False
    )
    rows = run.report["variants"]
    assert [(r["dataset"], r["variant"]) for r in rows] == [
        ("tiny_set", "bm25"),
        ("tiny_set", "dense-hash"),
        ("tiny_set", "hybrid"),
    ]
    # hybrid equals the default configuration: reused, not asked again
    assert rows[2]["same_as"] == "default"
    assert len(script.opened) == 3  # default, bm25, dense-hash
    bm25, dense = script.opened[1], script.opened[2]
    assert bm25.retrieval.use_dense is False and bm25.retrieval.use_bm25 is True
    assert dense.embedder.models == ["hash"] and dense.retrieval.use_bm25 is False
    # every variant queries the default's index (bm25 skips the dense vectors at query time)
    assert bm25.data_dir == script.opened[0].data_dir
    assert dense.data_dir == script.opened[0].data_dir
    assert run.report["run"]["settings"]["variants"]["bm25"]["retrieval.use_dense"] is False


def test_cases_file_with_corpus_folder(tmp_path: Path) -> None:
    corpus = tmp_path / "docs_corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.md").write_text("# A\nAlpha.", encoding="utf-8")
    (corpus / "sub" / "b.md").write_text("# B\nBeta.", encoding="utf-8")
    cases = tmp_path / "eval" / "cases" / "sample.jsonl"
    cases.parent.mkdir(parents=True)
    rows = [
        {"id": "c1", "text": "alpha?", "lang": "en", "answerable": True,
         "expected_sources": ["a.md"], "groups": ["staff"]},
        {"id": "c2", "text": "beta?", "lang": "en", "answerable": True,
         "expected_sources": ["./sub/b.md"], "groups": []},
    ]  # fmt: skip
    cases.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    # the KB reports a's id as ingest derives it, and b only by its absolute source path
    a_id = document_id_for(str(corpus.resolve()), "a.md")
    script = Script(
        answers={
            "alpha?": ([FakeChunk(a_id, "Alpha.")], 0.9, 0),
            "beta?": ([FakeChunk("unknown-id", "Beta.", str(corpus / "sub" / "b.md"))], 0.9, 0),
        }
    )
    run = run_eval([cases], _settings(tmp_path), out=tmp_path / "out", backend=script.backend(),
                   progress=False, plots=False)  # fmt: skip
    entry = run.report["datasets"]["sample"]
    assert entry["retrieval"]["recall@1"] == 1.0
    assert entry["answering"]["correct_deflection_rate"] == 1.0
    assert script.synced == [corpus] and script.indexed == []
    assert [a.groups for a in script.acls] == [("staff",), ()]


def test_doc_keys_for_folder_sets(tmp_path: Path) -> None:
    corpus = tmp_path / "docs_corpus"
    corpus.mkdir()
    (corpus / "x.md").write_text("x", encoding="utf-8")
    ds = EvalDataset("s", "folder", corpus, (), tmp_path / "s.jsonl")
    keys = DocKeys(ds)
    assert keys.key(document_id_for(str(corpus.resolve()), "x.md"), None) == "x.md"
    assert keys.key("?", str(corpus / "y" / "z.md")) == "y/z.md"
    assert keys.key("?", "docs_corpus/y/z.md") == "y/z.md"
    assert keys.key("?", "y\\z.md") == "y/z.md"
    records = EvalDataset("r", "records", tmp_path / "c.jsonl", (), tmp_path)
    assert DocKeys(records).key("d1", "whatever") == "d1"


def test_cited_texts_prefers_full_passage_over_snippet() -> None:
    long = FakeChunk("d1", "A long passage text.")
    citations = [
        FakeCitation(1, "d1", long.point_id, "A long…"),
        FakeCitation(2, "d9", "gone", "only the snippet"),
    ]
    assert cited_texts(citations, [FakePassage(long)]) == {
        1: "A long passage text.",
        2: "only the snippet",
    }


# --- settings and variants ------------------------------------------------------------------


def test_apply_overrides_validates(tmp_path: Path) -> None:
    base = _settings(tmp_path)
    new = apply_overrides(base, {"retrieval.top_k": 12, "embedder.models": ["e5", "hash"]})
    assert new.retrieval.top_k == 12 and new.embedder.models == ["e5", "hash"]
    assert base.retrieval.top_k == 8  # the original is untouched
    with pytest.raises(EvalError, match="unknown setting"):
        apply_overrides(base, {"retrieval.nope": 1})
    with pytest.raises(EvalError, match="unknown setting"):
        apply_overrides(base, {"nope.top_k": 1})
    with pytest.raises(EvalError, match="invalid override"):
        apply_overrides(base, {"embedder.models": ["no-such-model"]})


def test_a_target_override_derives_the_threshold_again(tmp_path: Path) -> None:
    base = _settings(tmp_path)
    strict = apply_overrides(base, {"answer.target_wrong_rate": 0.1})
    shipped = load_calibration(SHIPPED)
    assert strict.retrieval.confidence_threshold == shipped.threshold(0.1)
    assert apply_overrides(strict, {"retrieval.top_k": 9}).retrieval.confidence_threshold == (
        shipped.threshold(0.1)
    )
    both = {"answer.target_wrong_rate": 0.1, "retrieval.confidence_threshold": 0.6}
    assert apply_overrides(base, both).retrieval.confidence_threshold == 0.6
    kept = apply_overrides(base, {"answer.target_wrong_rate": None})
    assert kept.retrieval.confidence_threshold == base.retrieval.confidence_threshold == 0.5


def test_eval_settings_never_use_the_configured_store(tmp_path: Path) -> None:
    base = apply_overrides(
        _settings(tmp_path),
        {"qdrant.url": "http://qdrant:6333", "database_url": "postgresql://u:pw@db/kb"},
    )
    s = eval_settings(base, tmp_path / "d", cache=tmp_path / "c")
    assert s.qdrant.url is None and s.database_url is None and s.data_dir == tmp_path / "d"
    assert s.retrieval.top_k == 8  # what answers is what is configured
    assert public_settings(base)["database_url"] == "postgresql://u:***@db/kb"


def test_eval_settings_open_the_gate_of_a_model_file(tmp_path: Path) -> None:
    # The preset's threshold would otherwise come back with its file: the calibration would
    # then learn the old model's verdicts as its labels.
    base = apply_overrides(_settings(tmp_path), {"retrieval.answerability": "small-chunks"})
    assert (
        base.retrieval.confidence_threshold
        == RetrievalSettings(answerability="small-chunks").confidence_threshold
    )  # the variant's file's threshold, not the base's
    s = eval_settings(base, tmp_path / "d", cache=tmp_path / "c")
    assert s.retrieval.confidence_threshold == 0.0
    assert s.retrieval.confidence_weights == base.retrieval.confidence_weights
    assert s.retrieval.chunk_size == base.retrieval.chunk_size == 96


def test_parse_variants(tmp_path: Path) -> None:
    s = apply_overrides(_settings(tmp_path), {"embedder.models": ["e5", "minilm"]})
    assert [v.name for v in parse_variants(["all"], s)] == [
        "bm25",
        "dense-e5",
        "dense-minilm",
        "hybrid",
    ]
    (custom,) = parse_variants(['deep:retrieval.top_k=20,embedder.models=["e5","use"]'], s)
    assert custom == Variant("deep", {"retrieval.top_k": 20, "embedder.models": ["e5", "use"]})
    (use,) = parse_variants(["dense-use"], s)
    assert use.overrides["embedder.models"] == ["use"]
    assert parse_variants(["default"], s) == [DEFAULT_VARIANT]
    assert [v.name for v in parse_variants(["bm25,dense-e5", "hybrid"], s)] == [
        "bm25",
        "dense-e5",
        "hybrid",
    ]
    with pytest.raises(EvalError, match="unknown variant"):
        parse_variants(["fast"], s)
    with pytest.raises(EvalError, match="unknown setting"):
        parse_variants(["x:retrieval.nope=1"], s)
    with pytest.raises(EvalError):
        parse_variants(["x:top_k"], s)


def test_duplicate_dataset_names_are_refused(tmp_path: Path) -> None:
    a = _write_set(tmp_path)
    (tmp_path / "b").mkdir()
    b = _write_set(tmp_path / "b")
    with pytest.raises(EvalError, match="share a name"):
        run_eval([a, b], _settings(tmp_path), out=tmp_path / "o", backend=_script().backend())


def test_cli_turns_user_errors_into_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kb.cli.eval import eval_command

    out = str(tmp_path / "o")
    result = CliRunner().invoke(eval_command, [str(tmp_path / "nope"), "--out", out])
    assert result.exit_code == 1 and "Error: no such dataset" in result.output
    folder = _write_set(tmp_path)
    result = CliRunner().invoke(eval_command, [str(folder), "--out", out, "--variants", "fast"])
    assert result.exit_code == 1 and "unknown variant 'fast'" in result.output
    assert "Traceback" not in result.output
