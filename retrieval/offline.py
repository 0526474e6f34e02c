"""Offline by design: nothing may fetch a model or phone home, whatever the environment says."""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "SCARF_NO_ANALYTICS": "true",
    "DO_NOT_TRACK": "true",
    "TOKENIZERS_PARALLELISM": "false",
}


def stay_offline() -> None:
    """Set :data:`OFFLINE_ENV` where the environment does not say otherwise (before the model
    and parsing libraries are imported)."""
    for var, value in OFFLINE_ENV.items():
        os.environ.setdefault(var, value)
