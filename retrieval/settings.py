"""One typed settings object, built at the edge (``create_app`` or the CLI), never at import.

Environment variables use the ``KB_`` prefix and ``__`` for nesting, e.g. ``KB_QDRANT__URL``.
A ``.env`` file in the working directory is read too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kb.retrieval.calibration import AnswerSettings, calibrated_threshold
from kb.retrieval.ops_settings import LogSettings, MetricsSettings, NotifySettings
from kb.retrieval.presets import FITTED_ON, model_settings

EmbedderName = Literal["e5", "use", "minilm", "hash"]


class QdrantSettings(BaseModel):
    """Where the vectors live. ``url`` set means a Qdrant server or cluster; else embedded Edge."""

    url: str | None = None
    api_key: str | None = None
    path: Path | None = None
    """Embedded shard folder; defaults to ``<data_dir>/qdrant``."""
    collection: str = "kb_chunks"
    local_mode: bool = False
    """Use qdrant-client's local (in-process, brute-force) mode at ``path``: for tests of the
    server adapter only, never for serving."""
    quantization: Literal["none", "int8"] = "none"
    """``int8``: scalar-quantised copies of the dense vectors held in RAM for search (results
    rescored with the originals, which stay on disk). Applies when the collection is created
    (``kb ingest --recreate``); measured in docs/experiments.md (issue 9)."""
    shard_number: int | None = Field(default=None, ge=1)
    """Server/cluster only, at collection creation: shards to spread the points over."""
    replication_factor: int | None = Field(default=None, ge=1)
    """Server/cluster only, at collection creation: copies of each shard."""
    write_consistency_factor: int | None = Field(default=None, ge=1)
    """Server/cluster only: replicas that must confirm a write."""

    @model_validator(mode="after")
    def _one_location(self) -> QdrantSettings:
        if self.url and self.path:
            raise ValueError("set either qdrant.url (a server) or qdrant.path (embedded), not both")
        if self.url and self.local_mode:
            raise ValueError("qdrant.local_mode runs without a server: unset qdrant.url")
        return self


class EmbedderSettings(BaseModel):
    """Dense models, each filling its own named vector; all of them take part in fusion."""

    models: list[EmbedderName] = Field(default_factory=lambda: list[EmbedderName](["e5"]))
    title_vectors: bool = True
    """Also index each chunk's short field (FAQ question, or title and heading path) as vector
    ``<model>_title``, searched as one more prefetch."""
    threads: int = 2
    query_threads: int = Field(default=1, ge=1)
    """Threads for encoding one question (e5, USE). A short query gains little from a second
    thread, and on a busy machine OpenMP's barriers make two several times slower
    (docs/experiments.md, issue 9)."""
    batch_size: int = 16
    st_model_path: Path | None = None
    """A sentence-transformers model already on disk (a company's own); adds vector ``st``."""
    cross_encoder_path: Path | None = None
    """A sentence-transformers cross-encoder on disk (a company's own; none ships): reorders the
    first ``cross_encoder_candidates`` passages and gives the confidence ``cross`` to weigh
    (docs/ranker.md, "A cross-encoder of your own")."""
    cross_encoder_candidates: int = Field(default=10, ge=1, le=200)


def _proximity() -> dict[Literal["ja", "en"], float]:
    return {"en": 1.0}


class RetrievalSettings(BaseModel):
    """Search and answer tuning; defaults come from the measurements in docs/experiments.md."""

    @model_validator(mode="before")
    @classmethod
    def _trained_answerability(cls, data: Any) -> Any:
        """Take the confidence model from ``answerability`` when it names a model file, and what
        it was fitted on (:mod:`retrieval.presets`); its threshold unless one is set too."""
        if not isinstance(data, dict) or data.get("answerability", "settings") == "settings":
            return data
        fields = cls.model_fields
        kinds = {k: type(fields[k].get_default(call_default_factory=True)) for k in FITTED_ON}
        filled = model_settings(str(data["answerability"]), kinds)
        if "confidence_threshold" in data:
            del filled["confidence_threshold"]
        return {**data, **filled}

    top_k: int = 8
    prefetch_k: int = 40
    max_citations: int = 3
    citations_per_document: int = Field(default=0, ge=0)
    """At most this many cited passages from one document (0: no limit); the next best passage
    of another document takes the place (docs/experiments.md, "smaller chunks")."""
    max_answer_sentences: int = 4
    confidence_threshold: float = 0.569
    """Answer at or above this confidence, escalate below. Set, it wins; unset, a model file
    (``answerability``) brings its own, or with ``answer.target_wrong_rate`` set the
    calibration gives it."""
    confidence_bias: float = -10.181
    confidence_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "cosine": 9.86,
            "coverage": 4.57,
            "coverage_any": -2.479,
            "is_qa": -0.488,
            "agreement": 8.657,
            "margin": -3.487,
            "cos_margin": -4.874,
            "answer_coverage": -3.126,
            "coverage_idf": -4.251,
            "answer_coverage_idf": 5.162,
            "oov": -2.8,
            "minmax_top": -3.549,
            "minmax_margin": 3.227,
            "proximity": 1.906,
        }
    )
    """Logistic confidence model over the answer's signals (``retrieval/answer.py``), fitted
    with ``python -m kb.eval.calibrate`` on the three evaluation sets (each weighted equally)
    with the default chunking; ``--write`` gave the calibration the threshold is read from
    (``answer``, docs/confidence.md). A model file (``answerability``) brings its own."""
    answerability: str = "settings"
    """Where the confidence model comes from: ``settings`` (the ``confidence_*`` settings),
    ``builtin`` (the answerability model ``kb train`` shipped with the ranker,
    ``retrieval/trained/answerability.json``), ``minmax`` (the one fitted on min-max fusion),
    ``small-chunks`` (the one fitted on 96-token chunks, for manuals) or a path to such a file.
    A model file replaces the ``confidence_*`` settings and sets what it was fitted on."""
    ranker: str = "off"
    """The second-stage ranker over the fused candidates (issue 21, ``retrieval/rerank.py``):
    ``off`` (the fused order, the default until the learned models meet their targets:
    docs/ranker.md), ``builtin`` (the model shipped in the package) or a path to a model
    ``kb train`` wrote. Turn it on together with ``answerability=builtin``."""
    ranker_candidates: int = Field(default=50, ge=1, le=500)
    """How many fused candidates the ranker reorders."""
    chunk_size: int = 320
    """Target chunk size in tokens (cl100k); ``answerability = "small-chunks"`` sets 96 (docs/
    experiments.md, "smaller chunks"). A change of it, of the overlap or of
    ``whole_section_size`` takes effect at ``kb ingest --reindex``."""
    chunk_overlap: int = 40
    whole_section_size: int = Field(default=0, ge=0)
    """A section of up to this many tokens is one chunk, a longer one is cut at ``chunk_size``
    (0, or not above ``chunk_size``: every section is cut at ``chunk_size``). With 320 and
    chunks of 96, long manuals answer better and the sample's scenarios worse (docs/
    experiments.md, "whole short sections")."""
    fusion: Literal["rrf", "minmax"] = "rrf"
    """How the prefetches' hits are ordered: ``rrf`` (weighted reciprocal rank fusion) or
    ``minmax`` (scores min-max normalised per prefetch, weighted, summed). Both are computed
    for every search and the confidence reads both; ``answerability = "minmax"`` turns on
    min-max order and its confidence model (docs/experiments.md, "Score-aware fusion")."""
    rrf_k: int = 2
    """RRF's ``k``: the reciprocal-rank score orders the passages with ``fusion = "rrf"``, and
    the confidence's ``agreement`` reads it whatever the fusion."""
    dense_weight: float = 0.4
    """Weight of each dense prefetch (the text and the title vector) in fusion."""
    bm25_weight: float = 1.0
    """Weight of the BM25 prefetch in fusion."""
    section_dense_scale: float = Field(default=1.0, ge=0.0)
    """Min-max fusion: scales the same-language dense prefetches' weight for passages that are
    not Q&A entries (e5 matches a question to a question far better than to a long section;
    ``answerability = "minmax"`` sets 0.25: docs/experiments.md, "Dense weight by kind")."""
    cross_lang_weight: float = Field(default=0.4, ge=0.0)
    """Fusion weight of one more dense prefetch, over the chunks in the other language than the
    question's (0 turns it off). BM25 and the dense neighbours favour the question's own
    language, so a manual written only in the other language never ranked; with this it does
    (docs/experiments.md, "Cross-language retrieval")."""
    cross_lang_terms_weight: float = Field(default=0.4, ge=0.0)
    """Fusion weight of one more BM25 prefetch, over the chunks in the other language: the
    question's words translated by a Japanese-English word list (``retrieval.lexicon``, from
    JMdict), with the Latin words and loanword origins both languages share. The other-language
    dense prefetch finds a manual on the topic; this one finds the passage with the question's
    words in it (docs/experiments.md, "A word list across the languages"). 0 turns it off."""
    language_shift: float = Field(default=0.3, ge=0.0, le=1.0)
    """How far a question's dense vector moves from its language toward the other one, as a
    share of the difference between the mean Japanese and the mean English passage of the
    knowledge base (``retrieval.lang.toward_other_language``): a manual in the other language
    that answers can then rank by what it says. Needs ``LANGUAGE_MIN_CHUNKS`` (20) chunks in
    each language, so a one-language knowledge base is searched as before; 0 turns it off
    (docs/experiments.md, "Language-neutral question vectors")."""
    proximity_weights: dict[Literal["ja", "en"], float] = Field(default_factory=_proximity)
    """Per question language, how much term proximity reorders the fused candidates
    (``retrieval/proximity.py``): the share of the question's adjacent word pairs a passage
    holds side by side, times this and the best fused score, is added to its score. English
    1.0 (emanual_tv MRR@10 0.688 -> 0.754); Japanese none: UniDic's short units make most
    pairs the pieces of one compound, and localgovfaq_ja lost (docs/experiments.md, "Term
    proximity")."""
    identifier_weight: float = Field(default=1.0, ge=0.0)
    """How much a passage holding the error code, part number or version the question names
    (``retrieval/identifiers.py``: "E-021", "TL-403", "1.04.02") rises among the fused
    candidates: its weighted share of them, times this and the best fused score, is added to its
    score, in either language. 0 turns it off (docs/experiments.md, "Identifiers")."""
    use_dense: bool = True
    """Add the dense prefetches (off for the BM25-only evaluation variant)."""
    use_bm25: bool = True  # the BM25 prefetch (off for dense-only evaluation variants)


class GuidelineSettings(BaseModel):
    """Data-handling guidelines applied before a question is stored, exported or embedded
    (``retrieval/guidelines.py``). Lists may also come from files, one entry a line (``#``
    starts a comment)."""

    customer_names: list[str] = Field(default_factory=list)
    employee_names: list[str] = Field(default_factory=list)
    names_files: list[Path] = Field(default_factory=list)
    """Extra name lists (customers, employees); each name becomes ``[NAME]``."""
    blocked_terms: list[str] = Field(default_factory=list)
    """Terms (unreleased product code names) that refuse the request: ``POLICY_BLOCKED``."""
    blocked_terms_files: list[Path] = Field(default_factory=list)
    blocked_message: str = (
        "This question mentions a topic the assistant may not handle (confidential or unreleased"
        " information). Please contact your manager or the support team directly."
    )


class SupportSettings(BaseModel):
    """The support loop: unanswered-queue grouping and query-log retention."""

    group_similarity: float = Field(default=0.85, ge=0.0, le=1.0)
    """Cosine (multilingual-e5 query vectors) at or above which a new unanswered question joins
    the most similar open group. Measured: paraphrases 0.86-0.96 (en, ja, en-ja), different
    needs 0.73-0.84 (``python -m bench.grouping``, README "Support loop")."""
    retention_days: int = Field(default=365, ge=1)
    """``kb purge-logs`` deletes questions (and their feedback) older than this."""
    memory_refit: Literal["background", "inline"] = "background"
    """How the question memory relearns its match model when its confirmed answers change.
    ``background``: the next question already matches the new entries, with the previous
    weights (the conservative prior after a start) while a thread refits (the leave-one-out
    fit grows with the square of the entries: about 1 s at 2,000). ``inline``: the next
    question waits for the refit, so every answer uses weights learned from every entry
    (``kb eval --history`` replays that way: its figures must not depend on timing)."""
    memory_ranker: bool = True
    """Learn a ranker from the confirmed questions (``retrieval.domain``): from 50 of them,
    and only while it ranks questions it was not fitted on better than the search's own
    order, it orders the candidates of every new question (the shipped ranker stands aside)."""
    memory_answerability: bool = False
    """Also learn when to answer from the confirmed questions (``retrieval.domain``). Off, the
    configured confidence decides on the search's own order: the learned gate raised the
    manual's wrong-answer rate (docs/question-memory.md, "The learned gate, opt-in")."""
    memory_wrong_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    """The wrong-answer rate the learned answerability is held to on the confirmed questions
    (out of fold; ``retrieval.gate``). Unset: the configured gate's rate on them."""


class OidcSettings(BaseModel):
    """The company's OpenID Connect provider: bearer JWTs are checked against its keys."""

    issuer: str | None = None
    """Expected ``iss``; OIDC is off while unset."""
    audience: str | None = None
    """Expected ``aud`` (this service's client id)."""
    jwks_url: str | None = None
    """The provider's JWKS endpoint (keys are cached and refetched on an unknown ``kid``)."""
    jwks_file: Path | None = None
    """A JWKS JSON file instead of the URL (air-gapped installs, tests)."""
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    user_claim: str = "sub"
    groups_claim: str = "groups"
    department_claim: str = "department"
    roles_claim: str = "roles"
    default_roles: list[str] = Field(default_factory=lambda: ["employee"])
    """Roles of a signed-in user whose token names none."""
    leeway_s: int = 30
    """Clock skew tolerated on ``exp``/``nbf``."""


class AuthSettings(BaseModel):
    """Who may call the API (issue 8): OIDC JWTs, local API tokens, widget tokens."""

    dev_headers: bool = False
    """Trust ``X-User-*`` headers as the identity: development only, loopback only."""
    host: str = "127.0.0.1"
    """The address the service listens on; with ``dev_headers`` it must be loopback."""
    oidc: OidcSettings = OidcSettings()
    widget_secret: SecretStr | None = None
    """Signs widget tokens; generated once and kept in ``<data_dir>/widget_secret`` if unset."""
    widget_ttl_s: int = Field(default=900, ge=30, le=86400)
    cors_origins: list[str] = Field(default_factory=list)
    """Origins whose pages may call the API from a browser; empty denies every other origin."""


class LimitsSettings(BaseModel):
    """Rate and size limits. Rates are per minute with a burst; 0 turns a rate off."""

    user_per_minute: int = Field(default=120, ge=0)
    user_burst: int = Field(default=30, ge=1)
    address_per_minute: int = Field(default=600, ge=0)
    address_burst: int = Field(default=100, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest request body outside uploads (``413 PAYLOAD_TOO_LARGE``); uploads use
    ``max_file_bytes``."""


class IngestSettings(BaseModel):
    """How ingestion runs beside the service, and the per-file parse limits (issue 20).

    A file over a limit fails alone with an error naming the limit and its variable
    (``KB_INGEST__MAX_ELEMENTS`` ...); the other files of the run go in.
    """

    isolated: bool = True
    """Parse and embed in a worker process with its own model instance (``threads`` threads),
    so that answers keep their latency while documents are ingested; ``False`` runs both in the
    calling process (tests, tools)."""
    threads: int = Field(default=1, ge=1)
    """Threads the worker process embeds with; the serving process keeps the other cores."""
    max_seconds: float = Field(default=120.0, gt=0)
    """Wall time to parse one file (enforced in the worker process, which is restarted)."""
    max_elements: int = Field(default=100_000, ge=1)
    """Paragraphs, rows, slides' paragraphs or sections of one file."""
    max_chars: int = Field(default=20_000_000, ge=1)
    """Characters of text extracted from one file."""
    max_unzipped_bytes: int = Field(default=200_000_000, ge=1)
    """Uncompressed size of an Office file's parts (zip bombs)."""
    max_archive_members: int = Field(default=10_000, ge=1)
    """Parts in an Office file (zip)."""
    max_compression_ratio: int = Field(default=200, ge=1)
    """Uncompressed / compressed size of one part of an Office file (parts over 1 MB)."""
    max_html_depth: int = Field(default=200, ge=8)
    """Nesting depth of HTML elements."""


class LLMSettings(BaseModel):
    """An OpenAI-compatible chat-completions endpoint (vLLM, Ollama, llama.cpp server, a hosted
    API) that writes generated answers (issue 7). ``base_url`` unset: answers are extractive."""

    base_url: str | None = None
    """Up to the version prefix, e.g. ``http://localhost:11434/v1``; ``/chat/completions`` is
    appended."""
    model: str = "default"
    api_key: SecretStr | None = None
    """Sent as ``Authorization: Bearer ...`` when set."""
    timeout_s: float = Field(default=30.0, gt=0)
    """Per attempt: connecting, and waiting for each piece of the answer."""
    max_retries: int = Field(default=1, ge=0, le=5)
    """Retries after a connection error, a timeout, 429 or 5xx, with exponential backoff."""
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=16)
    max_passages: int = Field(default=5, ge=1, le=20)
    """Best passages put in the prompt, numbered [1]..[n]."""
    min_supported_share: float = Field(default=0.5, ge=0.0, le=1.0)
    """Share of the generated sentences the faithfulness check must find supported; below it
    the extractive answer is given instead."""


class Settings(BaseSettings):
    """Everything configurable. Tests build it directly: ``Settings(data_dir=tmp_path)``."""

    model_config = SettingsConfigDict(
        env_prefix="KB_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    data_dir: Path = Path("./var")
    database_url: str | None = None
    """SQLAlchemy URL; defaults to SQLite at ``<data_dir>/kb.sqlite3``."""
    database_auto_upgrade: bool | None = None
    """Upgrade the schema when the service starts on a database behind the code. Unset: on
    SQLite only (the embedded default, one process); a server database is upgraded by
    ``kb db upgrade`` and the service refuses to start until then (issue 24)."""
    qdrant: QdrantSettings = QdrantSettings()
    embedder: EmbedderSettings = EmbedderSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    answer: AnswerSettings = AnswerSettings()
    guidelines: GuidelineSettings = GuidelineSettings()
    support: SupportSettings = SupportSettings()
    llm: LLMSettings = LLMSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitsSettings = LimitsSettings()
    notify: NotifySettings = NotifySettings()
    ingest: IngestSettings = IngestSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()
    redis_url: SecretStr | None = None
    """``redis://host:6379/0``: rate limits shared by every process and machine using it;
    unset: each process counts its own (issue 24)."""
    redis_prefix: str = "kb"
    """Prefix of this deployment's keys in Redis (several deployments may share one)."""
    max_question_chars: int = 2000
    max_file_bytes: int = 50 * 1024 * 1024
    embedding_cache: Path | None = None
    """Embedding cache file; defaults to ``<data_dir>/cache/embeddings.sqlite3``."""
    public_base_url: str = ""
    """Prefix for citation links; empty gives relative links (``/api/documents/...``)."""
    service_url: str = "http://127.0.0.1:8000"
    """The running service that ``kb ingest`` hands its run to when the embedded store is busy."""
    docs_dir: Path = Path("./docs_corpus")
    """The knowledge-base folder the service is started with: the folder ``POST /api/ingest``
    may read when ``ingest_roots`` is empty."""
    ingest_roots: list[Path] = Field(default_factory=list)
    """Server-side folders ``POST /api/ingest`` may read; empty: ``docs_dir`` only (issue 20)."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses or networks (CIDR) of reverse proxies whose ``X-Forwarded-For`` names the
    client; empty: the peer address is the client, forwarding headers are ignored."""
    audit_retention_days: int = Field(default=730, ge=1)
    """``kb audit purge`` deletes audit entries older than this (and records that it did)."""
    audit_denials_per_minute: int = Field(default=30, ge=0)
    """Refused requests recorded in the audit log per source (address or user) and minute;
    the rest are counted in the next recorded entry (``suppressed``). 0: every one."""
    api_docs: bool = True
    """Serve ``/docs`` (from the packaged page, never a CDN) and ``/openapi.json``."""

    @model_validator(mode="after")
    def _threshold_from_target(self) -> Settings:
        """``retrieval.confidence_threshold`` from ``answer.target_wrong_rate`` when neither it
        nor a model file (``retrieval.answerability``) sets it."""
        threshold = calibrated_threshold(self.retrieval, self.answer)
        if threshold is not None:
            self.retrieval = self.retrieval.model_copy(update={"confidence_threshold": threshold})
        return self

    def allowed_roots(self) -> list[Path]:
        """The folders ``POST /api/ingest`` may read, resolved."""
        return [p.expanduser().resolve() for p in (self.ingest_roots or [self.docs_dir])]

    def shard_path(self) -> Path:
        """The embedded Qdrant Edge (or local-mode) folder."""
        return self.qdrant.path or self.data_dir / "qdrant"

    def db_url(self) -> str:
        """The database URL in force."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'kb.sqlite3').resolve()}"

    def auto_upgrade(self) -> bool:
        """Whether the service upgrades the schema itself at start (``database_auto_upgrade``)."""
        if self.database_auto_upgrade is not None:
            return self.database_auto_upgrade
        return self.db_url().startswith("sqlite")

    def files_dir(self) -> Path:
        """Where managed copies of source files live (uploads and ingested originals)."""
        return self.data_dir / "files"

    def cache_dir(self) -> Path:
        """Embedding cache folder."""
        return self.data_dir / "cache"
