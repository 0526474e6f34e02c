"""How an answer reads (issue 21, item 7): asked how, the procedure whole and in order, in the
question's language. Hand-made passages, the real BM25 tokenizer."""

from dataclasses import replace

from kb.ingest.chunk import Chunker
from kb.retrieval.faithfulness import check_faithfulness
from kb.retrieval.models import Chunk, Location, ParsedDocument, ScoredChunk, Section
from kb.retrieval.shape import asks_how, procedure, procedure_answer
from kb.retrieval.sparse import BM25Encoder

ENC = BM25Encoder()

PDF_STEPS = (
    "When toner runs low, the panel shows W-101.\n\n"
    "1 Open the front cover.\n\n"
    "2 The cartridges are installed from left to right. Push the release lever\n\n"
    "of the empty cartridge and pull it out.\n\n"
    "3 Close the front cover. The machine calibrates for about 40 seconds.\n\n"
    "Keep used cartridges away from children."
)
JA_STEPS = (
    "トナーが残り少なくなると W-101 が表示されます。\n"
    "1. 前カバーを開けます。\n"
    "2. 空になったカートリッジのレバーを押して引き出します。\n"
    "3. 前カバーを閉じます。"
)


def _passage(text, *, heading=("Toner",), lang="en", index=0, doc="guide", kind="text"):
    chunk = Chunk(
        document_id=doc,
        version=1,
        index=index,
        text=text,
        title="Guide",
        source_path=f"{doc}.pdf",
        location=Location(heading_path=heading),
        lang=lang,
        start=0,
        end=len(text),
        groups=(),
        kind=kind,
    )
    return ScoredChunk(chunk=chunk, score=1.0 / (index + 1))


def _shape(question, passages):
    return procedure_answer(question, ENC.terms(question), passages, ENC)


def test_a_numbered_procedure_is_read_in_order_with_its_broken_lines_joined():
    steps = procedure(PDF_STEPS, "en")
    assert [s.split(" ")[0] for s in steps] == ["1", "2", "3"]
    assert steps[1] == (
        "2 The cartridges are installed from left to right. Push the release lever "
        "of the empty cartridge and pull it out."
    )
    # The note after the last finished step is not a step.
    assert "children" not in steps[-1]
    assert procedure(JA_STEPS, "ja") == [
        "1. 前カバーを開けます。",
        "2. 空になったカートリッジのレバーを押して引き出します。",
        "3. 前カバーを閉じます。",
    ]


def test_section_numbers_and_single_numbers_are_not_procedures():
    assert procedure("1.1 Overview\n1.2 Safety\nRead this first.", "en") == []
    assert procedure("1 sheet of paper is fed at a time.", "en") == []
    assert procedure("3 Close the cover.\n4 Wait.", "en") == []  # a procedure's second half


def test_how_to_questions_in_both_languages():
    for question in (
        "How do I replace the toner?",
        "What are the steps to reset the network settings?",
        "トナーの交換方法は？",
        "トナーカートリッジを交換するには？",
        "Wi-Fi の設定手順を教えてください",
        "紙詰まりの直し方",
        "トナー交換のしかた",
        "スキャナーの使い方を教えて",
    ):
        assert asks_how(question), question
    for question in (
        "What does W-101 mean?",
        "How many sheets does tray 1 hold?",
        "受付時間は？",
        "両方のトレイに入る用紙は？",
        "夕方に届いた荷物",
        "この方の連絡先",
    ):
        assert not asks_how(question), question


def test_a_how_to_question_gets_the_whole_procedure_in_order_and_faithful():
    guide = _passage(PDF_STEPS, heading=("Maintenance", "Replacing a toner cartridge"))
    other = _passage("Toner cartridges are sold in packs of two.", index=1, doc="price")
    answer, cited = _shape("How do I replace the toner cartridge?", [guide, other])
    assert cited == [guide]
    lines = answer.split("\n")
    assert [line.split(" ")[0] for line in lines] == ["1", "2", "3"]
    assert lines[1].endswith("pull it out. [1]") and "W-101" not in answer
    assert check_faithfulness(answer, {1: guide.chunk.text}).score == 1.0


def test_of_the_best_documents_procedures_the_one_about_the_question_wins():
    waste = _passage(
        "1 Open the inner waste toner cover.\n2 Pull the waste toner box out.",
        heading=("Maintenance", "Replacing the waste toner box"),
    )
    cartridge = _passage(PDF_STEPS, heading=("Maintenance", "Replacing a toner cartridge"), index=1)
    japanese = _passage(JA_STEPS, heading=("トナーカートリッジを交換する",), lang="ja", doc="ja")
    answer, cited = _shape("How do I replace the toner cartridge?", [waste, japanese, cartridge])
    assert cited == [cartridge] and answer.startswith("1 Open the front cover.")
    answer, cited = _shape("トナーカートリッジを交換するには？", [japanese, cartridge])
    assert cited == [japanese] and answer.startswith("1. 前カバーを開けます。")


def test_another_documents_procedure_that_shares_a_word_is_not_quoted():
    runbook = _passage("The service mode PIN is the serial number's last four digits.", doc="rb")
    secure = _passage("1. Choose Secure Print and enter a PIN.\n2. Tap Print.", index=1)
    assert _shape("How do I get the service mode PIN?", [runbook, secure]) is None


def test_a_neighbouring_procedure_is_not_quoted_for_the_section_that_answers():
    # Sample s-045: the shared folder's section says how in two sentences, without numbered
    # steps; the scan-to-email section beside it has steps, and shares "scan" with the question.
    folder = _passage(
        "Register the shared folder in the address book first. Then tap Home > Scan > Folder.",
        heading=("Scanning", "Saving scans to a shared folder"),
    )
    email = _passage(
        "1 Place the original.\n2 Tap Home > Scan > Email.\n3 Tap Start.",
        heading=("Scanning", "Sending scans by email"),
        index=1,
    )
    question = "How do I save a scan to a shared folder?"
    assert _shape(question, [folder, email]) is None
    # A section about the question that holds steps is still quoted (the email steps when
    # asked about email).
    answer, cited = _shape("How do I send a scan by email?", [folder, email])
    assert cited == [email] and answer.startswith("1 Place the original.")


def test_a_procedure_that_writes_the_questions_words_apart_is_not_quoted():
    # "How do I turn on 2-sided printing?" quoted the power switch's steps (turn, side) under
    # "Turning the machine on": the driver's section, first by proximity, writes "2-sided
    # printing" in the note after its steps.
    driver = _passage(
        "1 Run the installer.\n2 Print a test page.\n"
        "Automatic 2-sided printing is on by default in the driver.",
        heading=("Printing", "Installing the printer driver"),
    )
    power = _passage(
        "1 To turn the machine on, press the power switch on the left side.\n"
        "2 To turn it off, hold the Power button.",
        heading=("Machine Overview", "Turning the machine on and off"),
        index=1,
    )
    question = "How do I turn on 2-sided printing?"
    # Ordered by proximity (an English question): neither procedure writes its pairs.
    near = [replace(p, signals={"proximity": share}) for p, share in ((driver, 0.6), (power, 0.0))]
    assert _shape(question, near) is None
    # The fused order alone (no proximity signal): the power switch's steps hold most terms.
    answer, cited = _shape(question, [driver, power])
    assert cited == [power] and answer.startswith("1 To turn the machine on")
    # A procedure that writes them as the best passage does is still quoted.
    toner = _passage(PDF_STEPS, heading=("Maintenance", "Replacing the toner cartridge"))
    toner = replace(toner, signals={"proximity": 1.0})
    answer, cited = _shape("How do I replace the toner cartridge?", [toner])
    assert cited == [toner] and answer.startswith("1 Open the front cover.")


def test_a_question_that_asks_for_a_fact_keeps_the_composed_answer():
    guide = _passage(PDF_STEPS, heading=("Replacing a toner cartridge",))
    assert _shape("What does W-101 mean?", [guide]) is None
    # Asked how, but no procedure holds any of its words.
    assert _shape("How do I reset the network?", [guide]) is None


def test_a_procedure_that_chunking_cut_is_quoted_whole_from_its_section():
    # Small chunks split a long procedure: the best passage holds its middle steps only. Read
    # as its whole section (the document's consecutive chunks at the same heading), the answer
    # is the procedure from step 1 to the last, and the next section is not part of it.
    steps = [
        f"{n}. {verb} the {part} and check that the {part} indicator shows green before going on."
        for n, (verb, part) in enumerate(
            [
                ("Open", "cover"),
                ("Release", "lever"),
                ("Remove", "drum"),
                ("Insert", "toner"),
                ("Lock", "lever"),
                ("Close", "cover"),
            ],  # fmt: skip
            start=1,
        )
    ]
    body = "Replace the toner as follows.\n" + "\n".join(steps)
    heading = Location(heading_path=("Maintenance", "Replacing the toner"))
    after = "Store spare toner away from sunlight."
    text = f"{body}\n\n{after}"
    sections = [
        Section(text=body, location=heading, start=0),
        Section(text=after, location=Location(heading_path=("Storage",)), start=len(body) + 2),
    ]
    doc = ParsedDocument(title="Guide", sections=sections, lang="en", text=text)
    chunks = Chunker(chunk_size=40, chunk_overlap=8).chunk(
        doc, document_id="guide", source_path="guide.pdf", groups=(), version=1, doc_hash="h"
    )
    in_order = [ScoredChunk(chunk=c, score=0.0) for c in chunks]
    middle = next(p for p in in_order if "Insert the toner" in p.chunk.text)
    assert not middle.chunk.text.startswith("Replace") and len(chunks) > 3
    question = "How do I insert the toner?"
    # Without the document's chunks, the middle piece is no procedure from step 1.
    assert _shape(question, [middle]) is None
    answer, cited = procedure_answer(
        question, ENC.terms(question), [middle], ENC, lambda doc_id: in_order
    )
    lines = answer.split("\n")
    assert [line.split(" ")[0] for line in lines] == ["1.", "2.", "3.", "4.", "5.", "6."]
    assert "sunlight" not in answer and len(cited) == 1
    assert cited[0].chunk.point_id == middle.chunk.point_id  # cites the passage found
    assert check_faithfulness(answer, {1: cited[0].chunk.text}).score == 1.0


def test_a_sections_introduction_finds_the_steps_the_next_chunk_holds():
    # The best passage is the section's first chunk, with no step in it: the procedure is read
    # from the section all the same, with one read of the document.
    intro = "Replace the toner as follows. Keep the new cartridge in its bag until step 3."
    body = (
        intro
        + "\n"
        + "\n".join(
            f"{n}. {verb} and check the indicator before you go on to the next step."
            for n, verb in enumerate(["Open the cover", "Pull the lever", "Insert the toner"], 1)
        )
    )
    doc = ParsedDocument(
        title="Guide",
        sections=[Section(text=body, location=Location(heading_path=("Toner",)), start=0)],
        lang="en",
        text=body,
    )
    chunks = Chunker(chunk_size=20, chunk_overlap=0).chunk(
        doc, document_id="guide", source_path="guide.pdf", groups=(), version=1, doc_hash="h"
    )
    in_order = [ScoredChunk(chunk=c, score=0.0) for c in chunks]
    first = in_order[0]
    assert "1." not in first.chunk.text and len(chunks) > 1
    asked = []

    def read(doc_id):
        asked.append(doc_id)
        return in_order

    question = "How do I replace the toner?"
    answer, _ = procedure_answer(question, ENC.terms(question), [first, first], ENC, read)
    assert [line.split(" ")[0] for line in answer.split("\n")] == ["1.", "2.", "3."]
    assert asked == ["guide"]


def test_a_procedure_is_not_quoted_when_the_text_after_its_steps_answers_what_they_do_not():
    # The sample's "How do I recall a submitted report?": the section "Submitting and recalling
    # a report" numbers the submitting steps, and the paragraph after them says how to recall.
    text = (
        "1. Open the report and click Submit.\n"
        "2. Confirm the approval route and click Submit again.\n"
        "While the report is in Submitted status and no approver has acted on it, you can take "
        "it back with Recall, edit it and submit it again."
    )
    section = _passage(text, heading=("Guide", "Submitting and recalling a report"))
    assert _shape("How do I recall a submitted report?", [section]) is None
    answer, cited = _shape("How do I submit a report?", [section])
    assert cited == [section] and answer.startswith("1. Open the report and click Submit.")
    assert "Recall" not in answer


def test_the_procedure_is_in_the_questions_language_where_a_passage_in_it_is_as_much_about_it():
    # The sample's "How do I connect the Aster to Wi-Fi?": the Japanese guide's section first,
    # the English guide's second; the answer quoted the Japanese steps.
    japanese = _passage(JA_STEPS, heading=("トナーカートリッジを交換する",), lang="ja", doc="ja")
    english = _passage(PDF_STEPS, heading=("Maintenance", "Replacing a toner cartridge"), index=1)
    question = "How do I replace the toner cartridge?"
    answer, cited = procedure_answer(question, ENC.terms(question), [japanese, english], ENC)
    assert cited == [japanese]  # no language given: the best passage's document, as before
    answer, cited = procedure_answer(
        question, ENC.terms(question), [japanese, english], ENC, lang="en"
    )
    assert cited == [english] and answer.startswith("1 Open the front cover.")
    # An English passage less about the question by its headings does not take its place.
    other = _passage("1 Open the tray.\n2 Fan the paper.", heading=("Paper",), index=1)
    answer, cited = procedure_answer(
        question, ENC.terms(question), [japanese, other], ENC, lang="en"
    )
    assert cited == [japanese]
