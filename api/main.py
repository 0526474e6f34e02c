"""ASGI entry point for uvicorn: ``uvicorn api.main:app``. Settings come from the environment."""

from api.app import create_app
from retrieval.logs import configure_logging
from retrieval.settings import Settings

_settings = Settings()
# Each uvicorn worker process: JSON or text lines, warnings and thread errors included.
configure_logging(_settings.log)
app = create_app(_settings)
