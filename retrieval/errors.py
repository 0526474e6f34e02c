"""Errors raised below the API. ``api/errors.py`` maps them to HTTP; the CLI to one-line messages.

KBError                 base: ``code`` names the error for clients, ``detail`` says what is wrong
├── StoreError          the vector store refused an operation or is unusable
│   └── StoreLockedError  another process holds the embedded store's folder
├── ParseError          one file could not be turned into text (the rest of a run goes on)
├── IngestError         a whole ingestion request is wrong (missing path, bad metadata)
├── NotIndexedError     nothing is indexed yet, so nothing can be answered
├── NotFoundError       an id that does not exist (or that the caller may not see)
└── LLMError            the LLM endpoint failed (connection, HTTP error, bad response)
    └── LLMTimeoutError   it did not answer in time
"""

from __future__ import annotations


class KBError(Exception):
    """Base of the project's errors. ``code`` is stable; ``detail`` is for people."""

    code = "INTERNAL_ERROR"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code


class StoreError(KBError):
    code = "STORE_ERROR"


class StoreLockedError(StoreError):
    code = "STORE_LOCKED"


class ParseError(KBError):
    code = "PARSE_ERROR"


class IngestError(KBError):
    code = "INGEST_ERROR"


class NotIndexedError(KBError):
    code = "NO_INDEXED_DOCUMENTS"


class NotFoundError(KBError):
    code = "NOT_FOUND"


class LLMError(KBError):
    """The LLM endpoint failed. The answer path falls back to an extractive answer on it."""

    code = "LLM_PROVIDER_ERROR"


class LLMTimeoutError(LLMError):
    code = "LLM_TIMEOUT"
