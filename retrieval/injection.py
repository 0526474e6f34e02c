"""Text in documents that reads like instructions to a language model (issue 7).

Retrieved passages are data for the model, never instructions. A manual or Q&A sheet can still
hold text written to steer a model ("ignore the previous instructions", 「上記の指示を無視して」),
by accident (a prompt-engineering guide) or on purpose. The same detector serves two places:

- ingestion (``ingest/pipeline.py``) records what it finds on the document as ``flags``
  (``[{kind, location, excerpt}]``) for the content owner to review (``GET /api/documents``,
  the content page, the ``kb ingest`` report);
- the generation prompt (``retrieval/generate.py``) replaces each sentence holding a match with
  :data:`REMOVED`, so the model never reads it, and quotes passages between delimiters that
  passage text cannot close.

The patterns are deliberately narrow (phrases, not single words): a false flag costs a content
owner a glance, a false removal costs an answer one sentence. English matching is
case-insensitive on NFKC text; Japanese patterns allow the common spellings.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from kb.retrieval.text import sentence_spans

REMOVED = "[instruction-like text removed]"
"""What a neutralised sentence becomes in a prompt."""

_EN_PREVIOUS = r"(?:all\s+|any\s+|the\s+)?(?:previous|prior|above|preceding|earlier|foregoing)"
_JA_PREVIOUS = r"(?:以前|前|上記|これまで|今まで|先ほど|先程|上|前述)の?"
_JA_INSTRUCTIONS = r"(?:指示|命令|指令|プロンプト|ルール|設定)"

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "override",
        re.compile(
            r"\b(?:ignore|disregard|forget|override|skip)\s+(?:all\s+)?"
            + _EN_PREVIOUS
            + r"\s+(?:instructions?|prompts?|rules|directions|messages|context)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "override",
        re.compile(
            r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:your|the)\s+"
            r"(?:instructions|rules|guidelines|system\s+prompt)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "override",
        re.compile(
            _JA_PREVIOUS
            + r"(?:すべての|全ての|全部の)?"
            + _JA_INSTRUCTIONS
            + r"(?:を|は)?(?:すべて|全て)?(?:無視|忘れ|破棄)"
        ),
    ),
    ("override", re.compile(r"(?:指示|命令|ルール)(?:を|は)(?:すべて|全て)?無視し")),
    (
        "role",
        re.compile(
            r"\byou\s+are\s+now\s+(?:a|an|the|in|my|no\s+longer)\b"
            r"|\bfrom\s+now\s+on,?\s+you\s+(?:are|will|must)\b"
            r"|\bact\s+as\s+(?:a|an)\s+(?:different|unrestricted|new)\b"
            r"|\bpretend\s+(?:to\s+be|you\s+are)\b",
            re.IGNORECASE,
        ),
    ),
    ("role", re.compile(r"あなたは(?:今から|これから|今後|以後)|今からあなたは")),
    (
        "system_prompt",
        re.compile(
            r"\b(?:reveal|show|print|repeat|output|leak)\s+(?:me\s+)?(?:your|the)\s+"
            r"(?:system\s+prompt|hidden\s+instructions|initial\s+instructions)\b"
            r"|\bnew\s+(?:system\s+)?instructions\s*:"
            r"|\bsystem\s+prompt\s*:",
            re.IGNORECASE,
        ),
    ),
    ("system_prompt", re.compile(r"システムプロンプト(?:を|は)?(?:表示|出力|教え|開示)")),
    (
        "delimiter",
        re.compile(
            r"</?\s*(?:passage|passages|system|instructions?)\b[^>]*>"
            r"|<\|(?:im_start|im_end|system|endoftext)\|>"
            r"|^\s*#{2,}\s*(?:system|instruction)s?\b"
            r"|\[/?INST\]",
            re.IGNORECASE | re.MULTILINE,
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class InstructionMatch:
    """One instruction-like span: ``kind`` (``override``, ``role``, ``system_prompt``,
    ``delimiter``), its offsets in the NFKC text and the sentence around it."""

    kind: str
    start: int
    end: int
    sentence: tuple[int, int]


def find_instructions(text: str) -> list[InstructionMatch]:
    """Instruction-like spans of ``text`` (NFKC-normalised first), in order, one per sentence.

    :param text: any passage or document text, English or Japanese.
    :returns: matches with offsets into ``unicodedata.normalize("NFKC", text)``.
    """
    plain = unicodedata.normalize("NFKC", text)
    hits: list[tuple[int, int, str]] = []
    for kind, pattern in _PATTERNS:
        hits.extend((m.start(), m.end(), kind) for m in pattern.finditer(plain))
    if not hits:
        return []
    spans = sentence_spans(plain) or [(0, len(plain))]
    out: dict[tuple[int, int], InstructionMatch] = {}
    for start, end, kind in sorted(hits):
        sentence = next(((s, e) for s, e in spans if s <= start < e), (start, max(end, start + 1)))
        # A match running past its sentence (a delimiter split by the sentence rules) takes
        # the following sentences with it.
        last = max((e for s, e in spans if s < end), default=sentence[1])
        sentence = (sentence[0], max(sentence[1], last))
        out.setdefault(sentence, InstructionMatch(kind, start, end, sentence))
    return list(out.values())


def excerpt(text: str, match: InstructionMatch, width: int = 160) -> str:
    """The sentence of ``match`` (NFKC), shortened to ``width`` characters around the match."""
    plain = unicodedata.normalize("NFKC", text)
    s, e = match.sentence
    sentence = " ".join(plain[s:e].split())
    if len(sentence) <= width:
        return sentence
    offset = max(0, match.start - s - width // 3)
    cut = " ".join(plain[s + offset : s + offset + width].split())
    return ("…" if offset else "") + cut + "…"


def neutralize(text: str) -> tuple[str, int]:
    """``text`` (NFKC) with each sentence holding an instruction-like span replaced by
    :data:`REMOVED`. :returns: the text and the number of sentences replaced."""
    plain = unicodedata.normalize("NFKC", text)
    matches = find_instructions(plain)
    if not matches:
        return plain, 0
    parts: list[str] = []
    pos = 0
    for m in sorted(matches, key=lambda x: x.sentence):
        s, e = m.sentence
        if s < pos:  # overlapping sentence ranges: already removed
            pos = max(pos, e)
            continue
        parts += [plain[pos:s], REMOVED]
        pos = e
    parts.append(plain[pos:])
    return "".join(parts), len(matches)
