"""A Japanese-English word list, so that BM25 can search a manual in the other language.

A Japanese employee asks about a fact that only the English manual states (「ファクスは呼び出し音が
何回鳴ったら自動で受信しますか？」, answered by "receives faxes automatically after 2 rings"). BM25
matches words of one language, and a multilingual model's vectors rank a Japanese passage on the
same topic above the English one that answers (the language shift and the other-language dense
prefetch narrow that gap, they do not close it). The question's words, looked up here, give a
second BM25 query in the other language: 呼び出し音 -> ring, 自動 -> automatic, 受信 -> receive.
:meth:`retrieval.sparse.BM25Encoder.translations` looks the words up, :func:`translated_query`
makes the query, and the search runs it over the other language's chunks only, as one more
prefetch (``retrieval.cross_lang_terms_weight``). An extractive answer quotes a passage in the
other language by the same translations (:func:`retrieval.extractive.compose_extractive`).

The list is derived from JMdict (© the Electronic Dictionary Research and Development Group,
CC BY-SA 3.0, https://www.edrdg.org/edrdg/licence.html), its common words only (the entries with
a priority tag, about 30,000), and shipped as ``retrieval/trained/lexicon-ja-en.json.gz`` under
the same licence (``retrieval/trained/LEXICON-LICENSE.txt``). It is rebuilt from the SQLite database
that the ``jamdict-data`` package carries (not a dependency of the product) with::

    python -m kb.retrieval.lexicon /path/to/jamdict.db retrieval/trained/lexicon-ja-en.json.gz

The same database gives the same file byte for byte.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sqlite3
import sys
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kb.retrieval.errors import KBError
from kb.retrieval.lang import other_lang
from kb.retrieval.models import Lang, SparseQuery, SparseVector
from kb.retrieval.sparse import term_id

LEXICON_PATH = Path(__file__).resolve().parent / "trained" / "lexicon-ja-en.json.gz"
PRIORITY_TAGS = frozenset({"ichi1", "ichi2", "news1", "news2", "spec1", "spec2", "gai1", "gai2"})
"""JMdict's marks of a common word: only entries with one of them are kept (rare readings and
senses are where a dictionary lookup goes astray)."""
SENSES = 2
"""Senses of an entry whose glosses translate a Japanese word (the first are the common ones)."""
GLOSSES = 3
"""Glosses kept per sense."""
GLOSS_WORDS = 3
"""Longer glosses are explanations ("the act of ..."), not translations: left out."""

_PAREN = re.compile(r"\([^)]*\)")
_ENGLISH_WORD = re.compile(r"^[A-Za-z]+$")


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Japanese headword -> English words; English word -> Japanese headwords."""

    ja_en: dict[str, tuple[str, ...]]
    en_ja: dict[str, tuple[str, ...]]

    def english(self, headword: str) -> tuple[str, ...]:
        """The English words of a Japanese headword's common senses (lower case)."""
        return self.ja_en.get(headword, ())

    def japanese(self, word: str) -> tuple[str, ...]:
        """The Japanese headwords whose first sense an English ``word`` translates."""
        w = word.lower()
        found = self.en_ja.get(w)
        if found is None and len(w) > 3 and w.endswith("s"):
            found = self.en_ja.get(w[:-1])
        return found or ()


_loaded: dict[Path, Lexicon] = {}
_lock = threading.Lock()


def translated_query(
    translations: Mapping[str, Sequence[str]] | None, lang: Lang, weight: float
) -> SparseQuery | None:
    """The prefetch of a question asked in ``lang`` with these ``translations``
    (:meth:`retrieval.sparse.BM25Encoder.translations`): a BM25 query over the other language's
    chunks, at fusion weight ``weight``, each word's translations sharing one term's weight
    (``1 / sqrt(n)`` each of ``n``); ``None`` when nothing translates or ``weight`` is 0."""
    if not translations or weight <= 0:
        return None
    query: dict[int, float] = {}
    for found in translations.values():
        for term in found:
            idx = term_id(term)
            query[idx] = max(query.get(idx, 0.0), len(found) ** -0.5)
    ids = sorted(query)
    vector = SparseVector(indices=ids, values=[query[i] for i in ids])
    return SparseQuery(vector=vector, lang=other_lang(lang), weight=weight)


def load_lexicon(path: Path = LEXICON_PATH) -> Lexicon:
    """The lexicon in ``path`` (read once per process).

    :raises KBError: ``CONFIGURATION_ERROR`` when the file is missing, unreadable or not a
        lexicon.
    """
    with _lock:
        found = _loaded.get(path)
        if found is None:
            try:
                found = _read(path)
            except (OSError, ValueError) as exc:
                raise KBError(
                    f"cannot read the Japanese-English word list {path} ({exc}): reinstall "
                    "the package, or set KB_RETRIEVAL__CROSS_LANG_TERMS_WEIGHT=0",
                    code="CONFIGURATION_ERROR",
                ) from exc
            _loaded[path] = found
        return found


def _read(path: Path) -> Lexicon:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not {"ja_en", "en_ja"} <= data.keys():
        raise ValueError("not a lexicon file (no ja_en and en_ja)")
    return Lexicon(
        ja_en={k: tuple(v) for k, v in data["ja_en"].items()},
        en_ja={k: tuple(v) for k, v in data["en_ja"].items()},
    )


# -- building it from JMdict ------------------------------------------------------------------


def _gloss_words(gloss: str) -> list[str]:
    """A gloss's English words, or none when it is an explanation rather than a translation."""
    text = re.sub(r"^to ", "", _PAREN.sub(" ", gloss).strip())  # a verb's "to"
    words = re.findall(r"[A-Za-z]+", text)
    if not words or len(words) > GLOSS_WORDS:
        return []
    return [w.lower() for w in words]


def build(db_path: Path) -> dict[str, object]:
    """The lexicon's content from jamdict's SQLite database of JMdict (``Kanji``/``Kana``
    forms with their priority tags in ``KJP``/``KNP``, ``Sense``, ``SenseGloss``)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        forms: dict[int, list[tuple[str, bool, bool]]] = defaultdict(list)
        for table, tags, is_kanji in (("Kanji", "KJP", True), ("Kana", "KNP", False)):
            query = (
                f"SELECT f.idseq, f.text, group_concat(p.text) FROM {table} f "
                f"LEFT JOIN {tags} p ON p.kid = f.ID GROUP BY f.ID ORDER BY f.ID"
            )
            for idseq, text, pri in db.execute(query):
                common = bool(set((pri or "").split(",")) & PRIORITY_TAGS)
                forms[idseq].append((text, is_kanji, common))
        common_ids = sorted(i for i, fs in forms.items() if any(c for _, _, c in fs))
        keep = set(common_ids)
        senses: dict[int, list[int]] = defaultdict(list)
        for idseq, sid in db.execute("SELECT idseq, ID FROM Sense ORDER BY ID"):
            if idseq in keep:
                senses[idseq].append(sid)
        glosses: dict[int, list[str]] = defaultdict(list)
        query = "SELECT sid, text FROM SenseGloss WHERE lang = 'eng' OR lang IS NULL ORDER BY rowid"
        for sid, text in db.execute(query):
            glosses[sid].append(text)
    finally:
        db.close()
    ja_en: dict[str, list[str]] = defaultdict(list)
    en_ja: dict[str, list[str]] = defaultdict(list)
    for idseq in common_ids:
        entry = forms[idseq]
        # UniDic's lemma of a word with kanji is its kanji form: the kana forms of such
        # an entry would never be looked up.
        kanji = [t for t, k, c in entry if k and c]
        heads = kanji or [t for t, _, c in entry if c]
        words: list[str] = []
        for sid in senses[idseq][:SENSES]:
            for gloss in glosses[sid][:GLOSSES]:
                words += [w for w in _gloss_words(gloss) if w not in words]
        if not words:
            continue
        for head in heads:
            ja_en[head] += [w for w in words if w not in ja_en[head]]
        head = heads[0]
        for gloss in glosses[senses[idseq][0]][:GLOSSES] if senses[idseq] else []:
            single = re.sub(r"^to ", "", _PAREN.sub(" ", gloss).strip())
            if _ENGLISH_WORD.match(single) and head not in en_ja[single.lower()]:
                en_ja[single.lower()].append(head)
    return {
        "source": "JMdict, common entries (https://www.edrdg.org/jmdict/j_jmdict.html)",
        "licence": "CC BY-SA 3.0, (c) Electronic Dictionary Research and Development Group",
        "ja_en": dict(sorted(ja_en.items())),
        "en_ja": dict(sorted(en_ja.items())),
    }


def write(content: dict[str, object], out: Path) -> None:
    """``content`` as gzipped JSON, the same bytes for the same content (no timestamp)."""
    raw = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with out.open("wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the Japanese-English lexicon (JMdict).")
    parser.add_argument("db", type=Path, help="jamdict's SQLite database (jamdict-data)")
    parser.add_argument("out", type=Path, nargs="?", default=LEXICON_PATH)
    args = parser.parse_args(argv)
    content = build(args.db)
    write(content, args.out)
    ja_en, en_ja = content["ja_en"], content["en_ja"]
    assert isinstance(ja_en, dict) and isinstance(en_ja, dict)
    sys.stdout.write(f"{args.out}: {len(ja_en)} Japanese headwords, {len(en_ja)} English words\n")


if __name__ == "__main__":
    main()
