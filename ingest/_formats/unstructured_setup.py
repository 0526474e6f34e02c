"""Make unstructured safe to run offline, once, before its first partition.

unstructured 0.27 classifies text with spaCy's ``en_core_web_sm`` and downloads the model on
first use when it is missing; offline that raises ``RuntimeError: Failed to download spaCy
model`` (md, html, docx), after a network timeout. Its private loader is replaced by a blank
English pipeline with a sentencizer: the text is identical, only the narrative/title guess gets
coarser, and this package decides headings from markup and styles anyway. The patch is
process-wide: any later use of unstructured in the process gets the blank pipeline too.

It also opts out of unstructured's analytics ping (sent at import unless ``DO_NOT_TRACK`` or
``SCARF_NO_ANALYTICS`` is set) and of its usage notice.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_lock = threading.Lock()
_ready = False

_CACHED = ("_get_nlp", "_process_cached", "word_tokenize", "pos_tag", "_tokenize_for_cache")
_ENV = {"SCARF_NO_ANALYTICS": "true", "DO_NOT_TRACK": "true", "UNSTRUCTURED_DISABLE_NOTICE": "1"}


def blank_spacy_pipeline() -> Any:
    """A blank English spaCy pipeline with sentence splitting: no model download needed."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def ensure_unstructured() -> None:
    """Set the opt-out variables and patch unstructured's spaCy loader (idempotent).

    :raises RuntimeError: when unstructured no longer has the private hooks this relies on,
        so an upgrade that breaks the offline workaround fails loudly instead of downloading.
    """
    global _ready
    if _ready:
        return
    with _lock:
        if _ready:
            return
        for name, value in _ENV.items():
            if not os.environ.get(name, "").strip():
                os.environ[name] = value
        from unstructured.nlp import tokenize

        loader = getattr(tokenize, "_get_nlp", None)
        if not hasattr(tokenize, "_load_spacy_model") or not hasattr(loader, "cache_clear"):
            raise RuntimeError(
                "unstructured.nlp.tokenize changed: the offline spaCy workaround "
                "(_load_spacy_model, _get_nlp) no longer applies"
            )
        tokenize._load_spacy_model = blank_spacy_pipeline
        # Drop anything cached from a pipeline loaded before the patch.
        for name in _CACHED:
            clear = getattr(getattr(tokenize, name, None), "cache_clear", None)
            if callable(clear):
                clear()
        _ready = True
