"""The product end to end on the sample knowledge base, with the real models and Qdrant Edge."""

from __future__ import annotations

import shutil
from contextlib import ExitStack

import pytest

from kb.ingest.pipeline import Ingestor
from kb.retrieval.models import AccessFilter
from tests.integration._kb import open_kb
from tests.integration.conftest import CORPUS, load_cases, sample_settings

pytestmark = pytest.mark.integration


def _expected_hit(result, expected: list[str]) -> bool:
    return any(c.source_path in expected for c in result.citations)


def test_the_whole_sample_corpus_ingests(sample_kb):
    _, _, report = sample_kb
    failed = [(f.path, f.error) for f in report.files if f.outcome == "failed"]
    assert failed == []
    assert report.count("added") >= 7
    assert all(f.chunks > 0 for f in report.files if f.outcome == "added")


def test_example_questions_are_answered_or_escalated(sample_kb):
    kb, _, _ = sample_kb
    cases = load_cases()
    answerable = [c for c in cases if c["answerable"]]
    unanswerable = [c for c in cases if not c["answerable"]]
    assert len(answerable) >= 40 and len(unanswerable) >= 15
    hits, misses = 0, []
    for case in answerable:
        result = kb.ask(case["text"], acl=AccessFilter(tuple(case.get("groups") or ())))
        if result.status == "answered" and _expected_hit(result, case["expected_sources"]):
            hits += 1
        else:
            misses.append(
                (case["id"], case["text"], result.status, [c.source_path for c in result.citations])
            )
    escalated = 0
    wrongly_answered = []
    for case in unanswerable:
        result = kb.ask(case["text"], acl=AccessFilter(tuple(case.get("groups") or ())))
        if result.status == "escalated":
            escalated += 1
        else:
            wrongly_answered.append((case["id"], case["text"], result.answer[:80]))
    answer_rate = hits / len(answerable)
    escalation_rate = escalated / len(unanswerable)
    print(f"answered with expected source: {answer_rate:.1%}; escalated: {escalation_rate:.1%}")
    # The bar, 90% and 90%. Measured 92% (61/66) / 93% (26/28) with the default model
    # and threshold (docs/benchmarks.md, "The sample knowledge base"): it fails on a regression
    # of two answered questions or of one escalated one.
    assert answer_rate >= 0.90, misses
    assert escalation_rate >= 0.90, wrongly_answered


def test_japanese_questions_find_japanese_passages_and_english_ones_english(sample_kb):
    kb, _, _ = sample_kb
    ja = kb.ask("トナーカートリッジの交換手順を教えてください", acl=AccessFilter())
    en = kb.ask("How do I replace the toner cartridge?", acl=AccessFilter())
    assert ja.status == "answered" and en.status == "answered"
    assert ja.passages[0].chunk.lang == "ja" and ja.lang == "ja"
    assert en.passages[0].chunk.lang == "en" and en.lang == "en"
    assert "[1]" in ja.answer and "[1]" in en.answer


def test_every_answer_sentence_is_cited_and_quoted_from_its_passage(sample_kb):
    kb, _, _ = sample_kb
    for case in load_cases()[:30]:
        result = kb.ask(case["text"], acl=AccessFilter(tuple(case.get("groups") or ())))
        if result.status != "answered":
            continue
        cited = {c.n: c for c in result.citations}
        import re

        parts = re.findall(r"(.+?)\s?\[(\d+)\]", result.answer)
        assert parts, result.answer
        for sentence, n in parts:
            citation = cited[int(n)]
            passage = next(p for p in result.passages if p.chunk.point_id == citation.chunk_id)
            # Word for word; a step a PDF broke over lines is quoted with its lines joined.
            assert "".join(sentence.split()) in "".join(passage.chunk.text.split())


def test_reingesting_the_same_folder_changes_nothing(sample_kb):
    from kb.ingest.pipeline import Ingestor
    from tests.integration.conftest import CORPUS

    kb, db, first = sample_kb
    before = kb.store.count()
    again = Ingestor(kb, db).sync_folder(CORPUS)
    assert again.count("unchanged") == len(first.files)
    assert again.count("added") == again.count("updated") == again.count("deleted") == 0
    assert again.embedded == 0
    assert kb.store.count() == before


@pytest.mark.parametrize(
    ("question", "lang", "only_in_other_language"),
    [
        (
            "Aster MF-3400 の最新ファームウェアで変わった点は何ですか？",
            "ja",
            "aster-mf3400-release-notes.pptx",
        ),
        ("TeamLedger で経費レポートを PDF に書き出す方法は？", "ja", "teamledger-user-guide.html"),
        ("How long are TeamLedger audit logs kept?", "en", "teamledger-admin-guide-ja.md"),
        (
            "How do I configure the daily automatic accounting export in TeamLedger?",
            "en",
            "teamledger-admin-guide-ja.md",
        ),
    ],
    ids=["ja-release-notes", "ja-user-guide", "en-admin-audit-log", "en-admin-export"],
)
def test_a_manual_in_the_other_language_is_found(
    sample_kb, question: str, lang: str, only_in_other_language: str
):
    # The release notes and the user guide exist only in English, the admin guide only in
    # Japanese: the cross-language prefetch and the question vector moved toward the other
    # language bring them into the first five passages.
    kb, _, _ = sample_kb
    passages, _ = kb.search(question, acl=AccessFilter(), lang=lang)
    top5 = passages[:5]
    assert any(
        p.chunk.source_path.endswith(only_in_other_language) and p.chunk.lang != lang for p in top5
    ), [(p.chunk.source_path, p.chunk.lang) for p in top5]


def test_the_passage_that_answers_comes_first_in_either_language(sample_kb):
    # Only the Japanese admin guide says how long audit logs are kept. Before question vectors
    # moved toward the other language, an English passage about something else ranked first
    # and the question escalated; now the answer quotes the Japanese sentence.
    kb, _, _ = sample_kb
    result = kb.ask("How long are TeamLedger audit logs kept?", acl=AccessFilter())
    assert result.passages[0].chunk.source_path.endswith("teamledger-admin-guide-ja.md")
    assert result.status == "answered"
    assert "監査ログは 5 年間保存され" in result.answer


def test_the_question_translated_finds_the_passage_that_answers_in_the_other_language(
    sample_kb,
):
    # Both guides have a section on scanning to a shared folder; only the English one says
    # which SMB versions. The Japanese section is on the topic and in the question's language;
    # the question's words looked up in the Japanese-English word list (共有 -> share, 保存 ->
    # save, 対応 -> support) search the English chunks and put the English passage first, and
    # the answer quotes its sentence first.
    kb, _, _ = sample_kb
    question = "スキャンを共有フォルダーに保存するとき、SMB のどのバージョンに対応していますか？"
    passages, _ = kb.search(question, acl=AccessFilter())
    assert passages[0].chunk.lang == "en" and "SMB 2.0 or 3.0" in passages[0].chunk.text
    result = kb.ask(question, acl=AccessFilter())
    assert result.status == "answered"
    assert result.answer.startswith("The machine can save scans to a Windows shared folder")
    weight = kb.settings.retrieval.cross_lang_terms_weight
    kb.settings.retrieval.cross_lang_terms_weight = 0.0
    try:
        without, _ = kb.search(question, acl=AccessFilter())
        before = kb.ask(question, acl=AccessFilter())
    finally:
        kb.settings.retrieval.cross_lang_terms_weight = weight
    assert without[0].chunk.lang == "ja" and not before.answer.startswith("The machine")
    # The confidence is read where it was fitted, on the search without the translation: the
    # prefetch lifts passages (the second one's lead shrinks) as the fit never saw.
    assert result.confidence == pytest.approx(before.confidence)


def test_questions_move_toward_the_other_language_only_where_both_are_written(sample_kb, tmp_path):
    kb, _, _ = sample_kb
    assert kb.language_direction() is not None
    english = tmp_path / "en"
    english.mkdir()
    for name in ("aster-mf3400-user-guide.pdf", "teamledger-user-guide.html"):
        shutil.copy(CORPUS / "manuals" / name, english / name)
    with open_kb(sample_settings(tmp_path / "var")) as (other, db):
        Ingestor(other, db).sync_folder(english)
        # Nothing in Japanese to move toward: English questions are searched as they were.
        assert other.language_direction() is None
        before = other.ask("How fast does the Aster MF-3400 print?", acl=AccessFilter())
        other.settings.retrieval.language_shift = 0.0
        after = other.ask("How fast does the Aster MF-3400 print?", acl=AccessFilter())
        assert before.confidence == after.confidence
        assert [p.chunk.point_id for p in before.passages] == [
            p.chunk.point_id for p in after.passages
        ]
        # A Japanese manual arrives: the next question already moves (the ingestion, not the
        # five-minute refresh, made the knowledge base compute the direction again).
        japanese = tmp_path / "ja"
        japanese.mkdir()
        shutil.copy(CORPUS / "manuals" / "teamledger-admin-guide-ja.md", japanese)
        Ingestor(other, db).sync_folder(japanese)
        assert other.language_direction() is not None


@pytest.mark.parametrize(
    ("question", "lang"),
    [
        ("In which country are TeamLedger's servers and backups located?", "en"),
        ("TeamLedger のサーバーとバックアップはどこの国にありますか？", "ja"),
    ],
)
def test_loanwords_shared_with_the_other_language_do_not_put_it_first(
    sample_kb, question: str, lang: str
):
    # The FAQ answers this in both languages, and 「サーバー」「バックアップ」 also stand for
    # "server" and "backup" (their English origins): at half weight in a passage, so a passage
    # in the question's own language still comes first.
    kb, _, _ = sample_kb
    passages, _ = kb.search(question, acl=AccessFilter())
    assert passages[0].chunk.lang == lang
    assert any(p.chunk.lang != lang for p in passages[:5])


def test_a_deeper_evaluation_answers_exactly_as_the_service_does(sample_kb):
    # kb eval asks for 30 passages (for recall@10 over documents); the answer, its confidence
    # and its features must still come from the configured top_k, or the evaluation would
    # measure a gate that is never served.
    kb, _, _ = sample_kb
    for case in load_cases()[::9]:
        acl = AccessFilter(tuple(case.get("groups") or ()))
        served = kb.ask(case["text"], acl=acl)
        deep = kb.ask(case["text"], acl=acl, depth=30)
        assert len(served.passages) <= kb.settings.retrieval.top_k < len(deep.passages)
        assert [p.chunk.point_id for p in deep.passages[: len(served.passages)]] == [
            p.chunk.point_id for p in served.passages
        ]
        assert (deep.status, deep.answer, deep.confidence) == (
            served.status,
            served.answer,
            served.confidence,
        )
        assert deep.features == served.features


@pytest.mark.slow
def test_the_same_files_ingested_again_elsewhere_answer_alike(tmp_path):
    # Answers come from the documents, not from the engine's internal order of equal scores
    # (title vectors shared by a section's chunks, equal BM25 scores): two ingestions of the
    # same files answered 13 of these questions with other confidences, by up to 0.03. Two
    # fresh ingestions: the session's shared one has other tests' documents come and go.
    with ExitStack() as stack:
        kbs = []
        for name in ("first", "second"):
            kb, db = stack.enter_context(open_kb(sample_settings(tmp_path / name)))
            Ingestor(kb, db).sync_folder(CORPUS)
            kbs.append(kb)
        for case in load_cases():
            acl = AccessFilter(tuple(case.get("groups") or ()))
            a, b = (kb.ask(case["text"], acl=acl) for kb in kbs)
            assert (a.status, a.answer) == (b.status, b.answer), case["id"]
            assert [c.chunk_id for c in a.citations] == [c.chunk_id for c in b.citations]
            assert a.confidence == pytest.approx(b.confidence, abs=1e-3), case["id"]


def test_min_max_fusion_keeps_first_the_section_bm25_scores_far_ahead(sample_kb):
    # Issue 21, item 4. Only the English user guide's specification table gives the MF-3400's
    # width, depth and height. Rank fusion puts the Japanese guide first: the dense neighbours
    # agree on it, and ranks do not say that BM25 scored the table far ahead of everything.
    # Min-max fusion reads the scores (retrieval.fusion = "minmax", docs/experiments.md).
    kb, _, _ = sample_kb
    question = "What are the width, depth and height of the Aster MF-3400?"
    saved = kb.settings
    first = {}
    try:
        for method in ("rrf", "minmax"):
            # The fusions' own orders: term proximity, which reorders either, off.
            update = {"fusion": method, "proximity_weights": {}}
            retrieval = saved.retrieval.model_copy(update=update)
            kb.settings = saved.model_copy(update={"retrieval": retrieval})
            passages, _ = kb.search(question, acl=AccessFilter())
            first[method] = passages[0]
    finally:
        kb.settings = saved
    assert first["minmax"].chunk.source_path.endswith("aster-mf3400-user-guide.pdf")
    assert first["rrf"].chunk.source_path.endswith("aster-mf3400-guide-ja.docx")
    # Both carry the reciprocal-rank score the confidence reads its agreement from.
    assert first["rrf"].signals["rrf"] == first["rrf"].score
    assert first["minmax"].signals["fused"] == first["minmax"].score
    assert first["minmax"].signals["rrf"] not in (0.0, first["minmax"].score)


@pytest.mark.parametrize(
    ("question", "source", "first", "last"),
    [
        (
            "How do I replace the toner cartridge?",
            "manuals/aster-mf3400-user-guide.pdf",
            "1 Open the front cover. [1]",
            "6 Close the front cover. [1] The machine calibrates for about 40 seconds. [1]",
        ),
        (
            "トナーカートリッジを交換するには？",
            "manuals/aster-mf3400-guide-ja.docx",
            "1. 前カバーを開けます。 [1]",
            "6. 前カバーを閉じます。 [1]約 40 秒間の調整が行われます。 [1]",
        ),
    ],
)
def test_a_procedure_is_quoted_whole_in_order_in_the_questions_language(
    sample_kb, question, source, first, last
):
    # Issue 21, item 7. Before, the answer quoted the low-toner warnings and the second step
    # out of order, with the other language's guide beside them.
    kb, _, _ = sample_kb
    result = kb.ask(question, acl=AccessFilter())
    assert result.status == "answered"
    assert [c.source_path for c in result.citations] == [source]
    lines = result.answer.split("\n")
    assert len(lines) == 6 and lines[0] == first and lines[-1] == last
    assert [line.split(" ")[0].rstrip(".") for line in lines] == ["1", "2", "3", "4", "5", "6"]


def test_asked_in_english_the_english_guide_s_procedure_is_quoted(sample_kb):
    # Issue 21, item 7: the Japanese guide's Wi-Fi section ranks first for this English
    # question, the English guide's second; the answer quoted the Japanese steps.
    kb, _, _ = sample_kb
    result = kb.ask("How do I connect the Aster to Wi-Fi?", acl=AccessFilter())
    assert result.status == "answered"
    assert [c.source_path for c in result.citations] == ["manuals/aster-mf3400-user-guide.pdf"]
    assert result.answer.startswith("1 Tap Home > Settings > Network > Wi-Fi")


@pytest.mark.parametrize(
    ("question", "source", "steps"),
    [
        ("How do I create an expense report?", "manuals/teamledger-user-guide.html", 7),
        ("ユーザーを追加するには？", "manuals/teamledger-admin-guide-ja.md", 4),
        ("CSV でユーザーを一括登録するには？", "manuals/teamledger-admin-guide-ja.md", 4),
    ],
)
def test_an_html_or_markdown_guide_s_numbered_list_is_quoted_as_its_steps(
    sample_kb, question, source, steps
):
    # The ordered lists of the HTML and Markdown guides came out of ingestion as "- " bullets:
    # the answer quoted a step or two among other sentences, never the procedure.
    kb, _, _ = sample_kb
    result = kb.ask(question, acl=AccessFilter())
    assert result.status == "answered"
    assert {c.source_path for c in result.citations} == {source}
    lines = result.answer.split("\n")
    assert [line.split(" ")[0] for line in lines] == [f"{n}." for n in range(1, steps + 1)]


@pytest.mark.parametrize(
    ("question", "restatement"),
    [
        (
            "We installed our Aster MF-3400 a year and a half ago. Is it still covered by the "
            "standard warranty?",
            "設置日から 1 年間の出張修理保証",
        ),
        ("How much more does TeamLedger Business cost per user than Standard?", "月額 600 円"),
        ("TeamLedger の 1 ユーザーあたりの月額料金はいくらですか？", "JPY 600 per user"),
        # The other language's entry came first: the question's own is quoted instead.
        (
            "Our team is moving to another floor. Can we carry the printer there ourselves?",
            "同じフロア内の移動",
        ),
        ("KOS のサポートセンターは土曜日も電話がつながりますか？", "Phone support"),
        # A Japanese guide's title page, quoted for naming the product.
        ("In which country are TeamLedger's servers and backups located?", "対象バージョン"),
    ],
)
def test_an_answer_does_not_say_again_in_the_other_language_what_it_said(
    sample_kb, question, restatement
):
    # Issue 21, item 7. The FAQ sheet holds each entry in both languages; the answer quoted
    # both, one after the other.
    kb, _, _ = sample_kb
    result = kb.ask(question, acl=AccessFilter())
    assert result.status == "answered"
    assert "faq/kos-support-faq.csv" in [c.source_path for c in result.citations]
    assert restatement not in result.answer


@pytest.mark.parametrize("question", ["紙詰まりの直し方", "プリンターの紙詰まりを直すには？"])
def test_a_word_asked_in_the_spelling_the_manual_does_not_use_finds_the_manual(sample_kb, question):
    # The Japanese guide writes 「紙づまり」 (UniDic: 紙 + 詰まり); employees type 「紙詰まり」,
    # one UniDic word that no passage held: nothing was quoted and the question escalated at 0.
    kb, _, _ = sample_kb
    result = kb.ask(question, acl=AccessFilter())
    assert result.status == "answered", result.confidence
    jam = [c for c in result.citations if "9.1 紙づまりを取り除く" in c.location]
    assert [c.source_path for c in jam] == ["manuals/aster-mf3400-guide-ja.docx"]


def test_a_sheet_rows_citation_follows_the_row_and_not_an_abbreviation_inside_it(sample_kb):
    kb, _, _ = sample_kb
    result = kb.ask("What is the price of the TN-340K black toner cartridge?", acl=AccessFilter())
    assert result.status == "answered"
    assert "Price (JPY excl. tax): 14800; Notes: User replaceable [" in result.answer
    assert "excl. [" not in result.answer


@pytest.mark.parametrize(
    ("question", "section"),
    [
        # UniDic's lemma of 「ワイファイ」 is "ＷｉＦｉ", which matched no passage's "Wi-Fi".
        ("ワイファイの設定方法", "Wi-Fi"),
        # 「やり方」 counted as two question words no passage answers with (遣る, 方): 0.38.
        ("コピーのやり方", "3.1 基本のコピー"),
    ],
)
def test_everyday_japanese_wording_finds_the_japanese_guide(sample_kb, question, section):
    kb, _, _ = sample_kb
    result = kb.ask(question, acl=AccessFilter())
    assert result.status == "answered", result.confidence
    first = result.citations[0]
    assert first.source_path == "manuals/aster-mf3400-guide-ja.docx"
    assert section in first.location


def test_the_passage_that_writes_the_questions_words_together_answers(sample_kb):
    # "turn", "side" and "print" stand apart in the power switch's step ("To turn the machine
    # on, press the power switch on the left side"), which the search put first and answered
    # at 0.89; the driver's section writes "2-sided printing" (term proximity).
    kb, _, _ = sample_kb
    result = kb.ask("How do I turn on 2-sided printing?", acl=AccessFilter())
    assert result.status == "answered", result.confidence
    assert result.answer.startswith("Automatic 2-sided printing is on by default in the driver.")
    assert "5.1 Installing the printer driver" in result.citations[0].location
    assert result.passages[0].signals["proximity"] > 0.5
    # Japanese questions keep the fused order: their pairs are mostly one word's pieces.
    passages, _ = kb.search("トナーカートリッジを交換するには", acl=AccessFilter())
    assert all("proximity" not in p.signals for p in passages)
