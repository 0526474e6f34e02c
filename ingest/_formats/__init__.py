"""Format parsers behind :func:`ingest.parse.parse_file`: one module per family of formats.

Each parser takes an already checked input (size, suffix, magic bytes) and returns
``(title or None, sections)``; ``ingest.parse`` assembles the :class:`ParsedDocument`.
Private to ``ingest``: import ``ingest.parse`` instead.
"""
