"""ASGI entry point for uvicorn: ``uvicorn api.main:app``. Settings come from the environment."""

from api.app import create_app
from retrieval.settings import Settings

app = create_app(Settings())
