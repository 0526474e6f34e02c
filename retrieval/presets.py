"""Confidence model files and what choosing one sets (``retrieval.answerability``).

A model file holds a confidence model (``bias``, ``weights``) and its ``threshold``, and may
name what it was fitted on (:data:`FITTED_ON`: the fusion, the sections' dense scale, the
chunking, the citations per document); choosing the file sets those too, so that its
threshold means what it meant when it was fitted. Three ship in ``retrieval/trained``
(:data:`NAMED`); ``kb train`` and ``python -m kb.eval.calibrate`` make others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

TRAINED = Path(__file__).resolve().parent / "trained"
TRAINED_ANSWERABILITY = TRAINED / "answerability.json"
"""The answerability model ``kb train`` shipped with the ranker (``builtin``)."""
MINMAX_CONFIDENCE = TRAINED / "confidence-minmax.json"
"""The confidence model fitted on min-max fusion's order (``minmax``)."""
SMALL_CHUNKS = TRAINED / "confidence-small-chunks.json"
"""96-token chunks, one citation per document and the confidence fitted on them, for
manuals (``small-chunks``; docs/experiments.md, "smaller chunks")."""
NAMED = {
    "builtin": TRAINED_ANSWERABILITY,
    "minmax": MINMAX_CONFIDENCE,
    "small-chunks": SMALL_CHUNKS,
}
CHUNKING = ("chunk_size", "chunk_overlap", "whole_section_size")
"""The settings that decide how documents are cut (``kb train`` records them)."""
PROXIMITY = "proximity_weights"
"""The term proximity the candidates were ordered by when the model was fitted (the shipped
files were fitted on the fused order alone: ``{}``)."""
FITTED_ON = ("fusion", "section_dense_scale", *CHUNKING, "citations_per_document", PROXIMITY)


def model_settings(choice: str, kinds: Mapping[str, Callable[[Any], Any]]) -> dict[str, Any]:
    """The retrieval settings the model file ``choice`` (a name of :data:`NAMED` or a path)
    gives; ``kinds`` converts each of :data:`FITTED_ON` to its setting's type.

    :raises ValueError: naming the file and what is wrong with it."""
    path = NAMED.get(choice) or Path(choice)
    try:
        trained = json.loads(path.read_text(encoding="utf-8"))
        filled = {
            "confidence_threshold": float(trained["threshold"]),
            "confidence_bias": float(trained["bias"]),
            "confidence_weights": dict(trained["weights"]),
        }
        filled |= {key: kinds[key](trained[key]) for key in FITTED_ON if key in trained}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"retrieval.answerability: cannot read {path} ({exc})") from exc
    return filled
