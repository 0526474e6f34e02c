"""Loading evaluation sets: a folder with ``corpus.jsonl`` + ``queries.jsonl``, or a cases file.

Formats are documented in docs/eval-datasets.md. Loading reads the questions only; the corpus is
streamed when indexing (:meth:`EvalDataset.records`) and hashed to key the index cache.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DatasetKind = Literal["records", "folder"]
DocKind = Literal["text", "qa"]

EXTRA_QUESTIONS = Path(__file__).resolve().parent / "extra"
"""Questions the project adds to a dataset folder of the same name (``<name>.jsonl``, the
``queries.jsonl`` format): out-of-scope questions for a set that has too few to calibrate when
to escalate (docs/eval-datasets.md)."""

CLEAN_GOLD_MIN = 0.5
"""``gold_answer_bigram_containment`` at or above which a gold document is trusted."""

_QUESTION_ENDS = ("?", "？", "。", "!", "！")
_CLOSERS = ")）]】」』 \t"


class DatasetError(ValueError):
    """A dataset folder or file is missing or malformed (message names the file and line)."""


@dataclass(frozen=True, slots=True)
class CorpusDoc:
    """One line of ``corpus.jsonl``; ``kind`` is ``"qa"`` for FAQ entries (title = question)."""

    id: str
    title: str
    text: str
    kind: DocKind = "text"
    source: str | None = None


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    """One question with its judgements.

    ``gold_ids`` are document ids (record sets) or source paths relative to the corpus folder
    (cases files). ``graded_qrels`` maps document to grade (2 answers, 1 related) when given.
    ``groups`` are the asker's access groups; ``lang`` is passed to the pipeline when set.
    """

    id: str
    text: str
    answerable: bool
    gold_ids: tuple[str, ...] = ()
    graded_qrels: Mapping[str, float] | None = None
    subset: str | None = None
    lang: Literal["ja", "en"] | None = None
    groups: tuple[str, ...] = ()
    gold_containment: float | None = None
    answer: str | None = None

    def gains(self) -> dict[str, float]:
        """Relevance gains for nDCG: the graded qrels when present, else 1 per gold id."""
        if self.graded_qrels:
            return {k: float(v) for k, v in self.graded_qrels.items() if v > 0}
        return dict.fromkeys(self.gold_ids, 1.0)

    @property
    def clean_gold(self) -> bool | None:
        """Whether the gold is trustworthy (None when the set does not say)."""
        if self.gold_containment is None:
            return None
        return self.gold_containment >= CLEAN_GOLD_MIN


@dataclass(frozen=True, slots=True)
class EvalDataset:
    """A question set and where its corpus is.

    ``kind == "records"``: ``corpus`` is a ``corpus.jsonl`` indexed record by record, documents
    matched by id. ``kind == "folder"``: ``corpus`` is a folder ingested like any source folder,
    documents matched by their path relative to it.
    """

    name: str
    kind: DatasetKind
    corpus: Path
    questions: tuple[EvalQuestion, ...]
    source: Path
    doc_kind: DocKind | None = None
    """Forced kind of every record (None: per record, see :func:`read_corpus`)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def records(self) -> Iterator[CorpusDoc]:
        """The corpus documents (record sets only)."""
        if self.kind != "records":
            raise DatasetError(f"{self.name}: a folder corpus has no records")
        return read_corpus(self.corpus, kind=self.doc_kind)

    def corpus_hash(self) -> str:
        """SHA-256 over the corpus content (file bytes; for a folder, every path and file)."""
        h = hashlib.sha256()
        if self.kind == "records":
            _hash_file(h, self.corpus)
            h.update(f"\0kind={self.doc_kind}".encode())
            return h.hexdigest()
        for path in sorted(p for p in self.corpus.rglob("*") if p.is_file()):
            h.update(path.relative_to(self.corpus).as_posix().encode("utf-8") + b"\0")
            _hash_file(h, path)
        return h.hexdigest()


def load_dataset(
    path: Path,
    *,
    corpus_dir: Path | None = None,
    doc_kind: DocKind | None = None,
    extra_dir: Path | None = EXTRA_QUESTIONS,
) -> EvalDataset:
    """Load a dataset folder (``corpus.jsonl`` + ``queries.jsonl``) or a cases ``.jsonl`` file.

    :param path: the folder, or a cases file such as ``eval/cases/sample.jsonl``.
    :param corpus_dir: for a cases file, the folder its ``expected_sources`` are relative to;
        default: the nearest ``docs_corpus/`` in the file's folder or one above it.
    :param doc_kind: force every record's kind (default: ``kind`` per line, else detected).
    :param extra_dir: where ``<folder name>.jsonl`` adds questions to a dataset folder
        (``None``: the folder's own questions only).
    :raises DatasetError: when files are missing, a line is malformed or an added question
        reuses an id.
    """
    path = Path(path)
    if path.is_dir():
        corpus, queries = path / "corpus.jsonl", path / "queries.jsonl"
        for f in (corpus, queries):
            if not f.is_file():
                raise DatasetError(f"{path}: missing {f.name}")
        name = path.resolve().name
        questions = tuple(_question_from_record(r, f"{queries}:{n}") for n, r in _jsonl(queries))
        extra = extra_dir / f"{name}.jsonl" if extra_dir is not None else None
        if extra is not None and extra.is_file():
            questions += _added_questions(extra, {q.id for q in questions})
        return EvalDataset(
            name=name,
            kind="records",
            corpus=corpus,
            questions=questions,
            source=path,
            doc_kind=doc_kind,
        )
    if path.is_file():
        folder = corpus_dir or find_corpus_dir(path)
        if folder is None or not folder.is_dir():
            raise DatasetError(f"{path}: no corpus folder (docs_corpus/) found; pass corpus_dir")
        questions = tuple(_question_from_case(r, f"{path}:{n}") for n, r in _jsonl(path))
        return EvalDataset(
            name=path.stem, kind="folder", corpus=folder, questions=questions, source=path
        )
    raise DatasetError(f"no such dataset folder or cases file: {path}")


def _added_questions(path: Path, taken: set[str]) -> tuple[EvalQuestion, ...]:
    added = tuple(_question_from_record(r, f"{path}:{n}") for n, r in _jsonl(path))
    seen = set(taken)
    for q in added:
        if q.id in seen:
            raise DatasetError(f"{path}: question id {q.id!r} is already in the dataset")
        seen.add(q.id)
    return added


def find_corpus_dir(cases_file: Path, name: str = "docs_corpus") -> Path | None:
    """The nearest ``name/`` folder beside ``cases_file`` or in a folder above it."""
    for folder in Path(cases_file).resolve().parents:
        if (folder / name).is_dir():
            return folder / name
    return None


def read_corpus(path: Path, *, kind: DocKind | None = None) -> Iterator[CorpusDoc]:
    """Documents of a ``corpus.jsonl``. Each record's kind is ``kind`` when given, else its own
    ``kind`` field, else ``"qa"`` when the corpus :func:`looks_like_faq`, else ``"text"``."""
    detected: DocKind | None = None
    if kind is None:
        faq = looks_like_faq(str(r.get("title") or "") for _, r in _jsonl(path))
        detected = "qa" if faq else "text"
    for n, row in _jsonl(path):
        where = f"{path}:{n}"
        doc_id, text = row.get("id"), row.get("text")
        if doc_id is None or not isinstance(text, str):
            raise DatasetError(f"{where}: a document needs 'id' and 'text'")
        row_kind = kind or row.get("kind") or detected or "text"
        if row_kind not in ("text", "qa"):
            raise DatasetError(f"{where}: 'kind' must be 'text' or 'qa'")
        source = row.get("source")
        yield CorpusDoc(
            id=str(doc_id),
            title=str(row.get("title") or ""),
            text=text,
            kind=row_kind,
            source=str(source) if source is not None else None,
        )


def looks_like_faq(titles: Iterator[str] | list[str]) -> bool:
    """True when at least half the titles end like a sentence or question (``? ？ 。 ! ！``,
    closing brackets ignored): FAQ entries are titled by their question, manual sections by a
    heading, which does not end with a sentence mark."""
    total = ends = 0
    for title in titles:
        total += 1
        ends += title.rstrip(_CLOSERS).endswith(_QUESTION_ENDS) or _ends_in_bracket_question(title)
    return total > 0 and ends * 2 >= total


def _ends_in_bracket_question(title: str) -> bool:
    # 「…どうしたらいいですか？（転入届）」: the question mark sits before a trailing label.
    head = title.rstrip()
    if head.endswith(("）", ")")):
        cut = max(head.rfind("（"), head.rfind("("))
        return cut > 0 and head[:cut].rstrip().endswith(_QUESTION_ENDS)
    return False


def _question_from_record(row: dict[str, Any], where: str) -> EvalQuestion:
    qid, text = row.get("id"), row.get("text")
    if qid is None or not isinstance(text, str):
        raise DatasetError(f"{where}: a question needs 'id' and 'text'")
    gold = tuple(str(g) for g in row.get("gold_ids") or ())
    graded = row.get("graded_qrels")
    if graded is not None and not isinstance(graded, dict):
        raise DatasetError(f"{where}: 'graded_qrels' must be an object")
    containment = row.get("gold_answer_bigram_containment")
    return EvalQuestion(
        id=str(qid),
        text=text,
        answerable=bool(row.get("answerable", bool(gold))),
        gold_ids=gold,
        graded_qrels={str(k): float(v) for k, v in graded.items()} if graded else None,
        subset=row.get("subset"),
        lang=_lang(row.get("lang"), where),
        groups=tuple(row.get("groups") or ()),
        gold_containment=float(containment) if containment is not None else None,
        answer=row.get("answer"),
    )


def _question_from_case(row: dict[str, Any], where: str) -> EvalQuestion:
    qid, text = row.get("id"), row.get("text")
    if qid is None or not isinstance(text, str):
        raise DatasetError(f"{where}: a case needs 'id' and 'text'")
    sources = row.get("expected_sources") or []
    if not isinstance(sources, list):
        raise DatasetError(f"{where}: 'expected_sources' must be a list of paths")
    gold = tuple(normalize_relpath(s) for s in sources)
    return EvalQuestion(
        id=str(qid),
        text=text,
        answerable=bool(row.get("answerable", bool(gold))),
        gold_ids=gold,
        # eval/cases/scope.jsonl names each case's kind (paraphrase, near_miss, ...): the
        # issue's measures are per kind, so a kind is reported as a subset.
        subset=row.get("subset") or row.get("kind"),
        lang=_lang(row.get("lang"), where),
        groups=tuple(str(g) for g in row.get("groups") or ()),
        answer=row.get("answer"),
    )


def normalize_relpath(path: str) -> str:
    """A source path as compared with gold: POSIX separators, no leading ``./`` or slash."""
    p = posixpath.normpath(path.replace("\\", "/").strip()).lstrip("/")
    return "" if p == "." else p


def _lang(value: object, where: str) -> Literal["ja", "en"] | None:
    if value in (None, ""):
        return None
    if value == "ja":
        return "ja"
    if value == "en":
        return "en"
    raise DatasetError(f"{where}: 'lang' must be 'ja' or 'en'")


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DatasetError(f"{path}:{n}: invalid JSON: {exc}") from exc
            if not isinstance(row, dict):
                raise DatasetError(f"{path}:{n}: expected a JSON object")
            yield n, row


def _hash_file(h: Any, path: Path) -> None:
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
