"""Evaluation variants: named configurations (``--variants``) applied over the settings."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kb.retrieval.settings import Settings


class EvalError(RuntimeError):
    """The evaluation cannot run (bad variant, duplicate dataset names, indexing failed)."""


@dataclass(frozen=True, slots=True)
class Variant:
    """A named configuration: dotted settings paths to override, e.g.
    ``Variant("dense-e5", {"embedder.models": ["e5"], "retrieval.use_bm25": False})``."""

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_VARIANT = Variant("default")


def apply_overrides(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    """A validated copy of ``settings`` with dotted keys replaced (environment not re-read).
    A target wrong-answer rate derives the confidence threshold again (``retrieval.calibration``).

    :raises EvalError: for a key that is not a setting or a value that does not validate.
    """
    data = settings.model_dump()
    if (
        overrides.get("answer.target_wrong_rate") is not None
        or "retrieval.answerability" in overrides
    ) and "retrieval.confidence_threshold" not in overrides:
        # The threshold the base settings derived (or were given) yields to the variant's
        # target, or to its model file's, unless the variant sets it too.
        del data["retrieval"]["confidence_threshold"]
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                raise EvalError(f"unknown setting {dotted!r}")
            node = child
        if last not in node:
            raise EvalError(f"unknown setting {dotted!r}")
        node[last] = value
    try:
        return type(settings).model_validate(data)
    except ValueError as exc:
        raise EvalError(f"invalid override {dict(overrides)!r}: {exc}") from exc


def default_variants(settings: Settings) -> list[Variant]:
    """BM25 only, dense only per configured model (and ``st`` when set), and hybrid."""
    out = [bm25_variant(settings)]
    out += dense_variants(settings)
    out.append(Variant("hybrid", {"retrieval.use_bm25": True}))
    return out


def bm25_variant(settings: Settings) -> Variant:  # noqa: ARG001 - same signature as the others
    """BM25 alone: the index keeps its dense vectors and the queries skip them."""
    return Variant("bm25", {"retrieval.use_dense": False, "retrieval.use_bm25": True})


def dense_variants(settings: Settings) -> list[Variant]:
    """One dense-only variant per configured embedding model."""
    out = [
        Variant(
            f"dense-{m}",
            {"embedder.models": [m], "embedder.st_model_path": None, "retrieval.use_bm25": False},
        )
        for m in settings.embedder.models
    ]
    if settings.embedder.st_model_path is not None:
        out.append(Variant("dense-st", {"embedder.models": [], "retrieval.use_bm25": False}))
    return out


def parse_variants(specs: Sequence[str], settings: Settings) -> list[Variant]:
    """Variants from command-line words.

    ``all`` (bm25, each dense, hybrid), ``bm25``, ``dense`` (one per configured model),
    ``dense-<model>`` (any model name), ``hybrid``, ``default``, or a custom
    ``NAME:key=value,key=value`` with JSON values (``"top:retrieval.top_k=12"``). Words are
    separated by spaces, or by commas outside a custom spec. Duplicates (by name) are dropped.

    :raises EvalError: for an unknown word or a malformed custom spec.
    """
    found: dict[str, Variant] = {}
    for spec in specs:
        for chunk in (w for w in re.split(r"\s+", spec.strip()) if w):
            words = [chunk] if ":" in chunk else [w for w in chunk.split(",") if w]
            for word in words:
                for v in _parse_one(word, settings):
                    found.setdefault(v.name, v)
    for v in found.values():
        apply_overrides(settings, v.overrides)  # fail before any indexing starts
    return list(found.values())


def _parse_one(word: str, settings: Settings) -> list[Variant]:
    if ":" in word:
        name, _, body = word.partition(":")
        if not name:
            raise EvalError(f"variant {word!r} needs a name before ':'")
        overrides: dict[str, Any] = {}
        for item in _split_top(body):
            key, eq, raw = item.partition("=")
            if not eq or not key:
                raise EvalError(f"variant {word!r}: expected key=value, got {item!r}")
            try:
                overrides[key.strip()] = json.loads(raw)
            except ValueError:
                overrides[key.strip()] = raw
        return [Variant(name, overrides)]
    named = {v.name: v for v in default_variants(settings)}
    if word == "all":
        return list(named.values())
    if word == "dense":
        return dense_variants(settings)
    if word == "default":
        return [DEFAULT_VARIANT]
    if word in named:
        return [named[word]]
    if word.startswith("dense-"):
        model = word.removeprefix("dense-")
        return [
            Variant(
                word,
                {
                    "embedder.models": [model],
                    "embedder.st_model_path": None,
                    "retrieval.use_bm25": False,
                },
            )
        ]
    raise EvalError(f"unknown variant {word!r} (all, bm25, dense, dense-<model>, hybrid, NAME:k=v)")


def _split_top(body: str) -> list[str]:
    """Split on commas outside brackets and quotes: ``a=[1,2],b=3`` -> ``["a=[1,2]", "b=3"]``."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quote = 0, ""
    for ch in body:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (s.strip() for s in parts) if p]
