"""Measure the queue-grouping threshold: cosine of multilingual-e5 query embeddings.

Prints the similarity of paraphrase pairs (English, Japanese, cross-language) and of
unrelated pairs from the same domain; the default ``support.group_similarity`` sits between.
Run: ``.venv/bin/python -m bench.grouping``.
"""

from __future__ import annotations

import numpy as np

from kb.retrieval.embedders import build_embedders
from kb.retrieval.settings import EmbedderSettings

SAME = [
    (
        "en",
        "Is there visitor parking at the Yokohama office?",
        "Where can guests park their car when they visit the Yokohama office?",
    ),
    (
        "en",
        "How do I reset my TeamLedger password?",
        "I forgot my TeamLedger login password, how can I get a new one?",
    ),
    ("en", "Can I bring my dog to the office?", "Are pets allowed in the office building?"),
    (
        "en",
        "When is the cafeteria open on Saturdays?",
        "What are the canteen's opening hours at the weekend?",
    ),
    (
        "ja",
        "横浜オフィスに来客用の駐車場はありますか？",
        "横浜事務所を訪問するお客様はどこに車を停められますか？",
    ),
    ("ja", "TeamLedger のパスワードを忘れました", "TeamLedger のパスワードをリセットする方法は？"),
    ("ja", "オフィスにペットを連れて行ってもいいですか？", "会社に犬を連れてきても大丈夫ですか？"),
    (
        "xx",
        "Is there visitor parking at the Yokohama office?",
        "横浜オフィスに来客用の駐車場はありますか？",
    ),
    (
        "xx",
        "How do I reset my TeamLedger password?",
        "TeamLedger のパスワードをリセットする方法は？",
    ),
    ("xx", "Can I bring my dog to the office?", "オフィスにペットを連れて行ってもいいですか？"),
]
DIFFERENT = [
    (
        "en",
        "Is there visitor parking at the Yokohama office?",
        "How do I reset my TeamLedger password?",
    ),
    ("en", "Can I bring my dog to the office?", "When is the cafeteria open on Saturdays?"),
    ("en", "How do I replace the toner cartridge?", "How do I clear a paper jam in tray 2?"),
    (
        "en",
        "What is the warranty period of the Aster MF-3400?",
        "What does the KOS Care Plus contract cost?",
    ),
    (
        "en",
        "Is there visitor parking at the Yokohama office?",
        "Is there a bicycle parking area at the Osaka office?",
    ),
    (
        "ja",
        "横浜オフィスに来客用の駐車場はありますか？",
        "TeamLedger のパスワードをリセットする方法は？",
    ),
    ("ja", "トナーの交換方法は？", "トレイ2の紙詰まりを取り除く方法は？"),
    ("ja", "経費精算の締め日はいつですか？", "交通費の上限はいくらですか？"),
    (
        "xx",
        "Is there visitor parking at the Yokohama office?",
        "TeamLedger のパスワードをリセットする方法は？",
    ),
    ("xx", "How do I replace the toner cartridge?", "トレイ2の紙詰まりを取り除く方法は？"),
]


def main() -> None:
    e5 = build_embedders(EmbedderSettings(models=["e5"]))[0]
    for label, pairs in (("paraphrases", SAME), ("different needs", DIFFERENT)):
        print(label)
        sims = []
        for lang, a, b in pairs:
            sim = float(np.dot(e5.embed_query(a), e5.embed_query(b)))
            sims.append(sim)
            print(f"  {lang}  {sim:.3f}  {a} | {b}")
        print(f"  min {min(sims):.3f}  max {max(sims):.3f}  mean {np.mean(sims):.3f}")


if __name__ == "__main__":
    main()
