"""ASGI entry point for uvicorn: ``uvicorn api.main:app``. Settings come from the environment."""

from kb.api.app import create_app
from kb.retrieval.logs import configure_logging
from kb.retrieval.settings import Settings

_settings = Settings()
# Each uvicorn worker process: JSON or text lines, warnings and thread errors included.
configure_logging(_settings.log)
app = create_app(_settings)
