"""The knowledge-base assistant: one import package over the repository's folders.

``kb.api``, ``kb.cli``, ``kb.db``, ``kb.eval``, ``kb.ingest``, ``kb.retrieval`` (and the pages in
``kb/frontend``) are the top-level folders of the repository, linked here
(``scripts/relayout.py``), so that an installed wheel puts one name, ``kb``, in site-packages.
"""

__version__ = "0.1.0"
