"""Settings of the web layer only (issue 6), from ``KB_`` environment variables like the rest."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    """Where the evaluation pages read their runs; built in ``create_app`` unless given."""

    model_config = SettingsConfigDict(env_prefix="KB_", env_file=".env", extra="ignore")

    eval_dir: Path = Path("./eval-runs")
    """The folder ``kb eval`` writes (``history.jsonl``, ``runs/<ts>/report.html``)."""
