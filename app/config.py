"""The one settings object: configs/default.yaml, overridden by RAG_* environment variables."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
CONFIG_VARIABLE = "RAG_CONFIG"  # picks another YAML file


class Section(BaseModel):
    """Settings are built once and never changed: a variant is `model_copy(update={...})`."""

    model_config = ConfigDict(frozen=True)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = 8000
    max_file_bytes: int = Field(20_000_000, gt=0)
    max_files_per_request: int = Field(20, gt=0)
    max_request_bytes: int = Field(200_000_000, gt=0)
    max_question_chars: int = Field(2000, gt=0)
    # Office files are ZIP archives: one that would unpack to more than this, or holds a large member compressed
    # more than max_unpack_ratio times (a zip bomb), is refused at upload.
    max_unpacked_bytes: int = Field(200_000_000, gt=0)
    max_unpack_ratio: float = Field(100, gt=1)
    # API keys (app/access.py); None: required when `host` is reachable from other machines.
    require_keys: bool | None = None

    @property
    def keys_required(self) -> bool:
        if self.require_keys is not None:
            return self.require_keys
        if self.host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: it may resolve to anything
            return True


class StorageSettings(Section):
    backend: Literal["sqlite", "postgres"] = "sqlite"  # documents, chunks and the job queue
    database_url: str = ""  # postgres: postgresql://user:password@host:5432/dbname

    @model_validator(mode="after")
    def _postgres_has_a_url(self) -> StorageSettings:
        if self.backend == "postgres" and not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ValueError("storage.backend postgres needs storage.database_url: postgresql://user@host:5432/db")
        return self

    data_dir: Path = Path("./data")
    model_cache_dir: Path = Path("./.cache/models")

    @property
    def database_path(self) -> Path:
        return self.data_dir / "rag.sqlite3"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"


class IngestSettings(Section):
    poll_seconds: float = Field(0.5, gt=0)
    lease_seconds: float = Field(60, gt=0)
    heartbeat_seconds: float = Field(5, gt=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9101, ge=0, le=65535)  # the worker's Prometheus endpoint; 0: none
    max_attempts: int = Field(3, gt=0)
    batch_size: int = Field(16, gt=0)  # jobs held at once, indexed with one index write
    parse_workers: int = Field(2, gt=0)  # documents parsed at once, each in a child process
    batch_wait_seconds: float = Field(2, gt=0)  # what is parsed waits at most this long for slower documents
    # text-layer: headings from the outline or the fonts, page numbers (ingest/pdf.py, offline); dedoc: its own
    # PDF readers, which need models from the Hugging Face hub. "pypdf" is the old name of text-layer.
    pdf_parser: Literal["text-layer", "dedoc"] = "text-layer"
    # Tesseract's languages for images and scanned PDF pages ("eng+deu": install tesseract-ocr-deu); "": no OCR.
    ocr_languages: str = "eng"
    # Each document is parsed in a child process, stopped past these: one hostile file fails alone.
    parse_timeout_seconds: float = Field(120, gt=0)
    parse_memory_bytes: int = Field(1_500_000_000, gt=0)  # the child's data segment, dedoc's ~0.4 GB included
    chunk_size: int = Field(800, gt=0)
    chunk_overlap: int = Field(120, ge=0)
    keep_generations: int = Field(2, ge=1)

    @field_validator("pdf_parser", mode="before")
    @classmethod
    def _old_pdf_parser_name(cls, value: object) -> object:
        return "text-layer" if value == "pypdf" else value


class IndexSettings(Section):
    # faiss: FAISS + BM25 segment files in storage.data_dir/index (one machine). qdrant: a Qdrant collection that
    # workers and API replicas on many machines share (qdrant_url; without one, Qdrant's embedded local mode in
    # storage.data_dir/qdrant, which only one process can open: tests and `make eval`).
    backend: Literal["faiss", "qdrant"] = "faiss"
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = "docqa"
    qdrant_timeout_seconds: float = Field(10.0, gt=0)


class EmbeddingSettings(Section):
    # fake: hashed word counts, no model; for tests and for working on the API and the chat page.
    backend: Literal["sentence-transformers", "fake"] = "sentence-transformers"
    model: str = "packaged:all-MiniLM-L6-v2"
    # sentence-transformers: torch, or ONNX Runtime (exported once into storage.model_cache_dir); onnx-int8 with
    # 8-bit weights. A store's vectors come from one of them: changing it needs a new data dir.
    runtime: Literal["torch", "onnx", "onnx-int8"] = "torch"
    batch_size: int = Field(32, gt=0)
    device: str = "cpu"


class RetrievalSettings(Section):
    mode: Literal["dense", "bm25", "hybrid"] = "hybrid"
    candidates: int = Field(40, gt=0)
    rrf_k: float = Field(10, gt=0)
    dense_weight: float = Field(1.0, ge=0)
    bm25_weight: float = Field(1.0, ge=0)
    reranker: str | None = None
    top_k: int = Field(4, gt=0)
    max_top_k: int = Field(20, gt=0)
    score_threshold: float = 0.386
    # Abstention score = (1 - coverage_weight) * best cosine + coverage_weight * share of the question's
    # words found in the top blocks; 0 uses the cosine alone.
    coverage_weight: float = Field(0.0, ge=0, le=1)
    relative_margin: float = Field(1.0, ge=0)


class GeneratorSettings(Section):
    # transformers: the model in-process (GPU when there is one). llama-cpp: the model in-process through llama.cpp
    # (a packaged model as Q8_0 GGUF, or a .gguf path; peft LoRA adapters converted to GGUF once). openai: any
    # OpenAI-compatible chat-completions server at base_url (vLLM, llama.cpp's server, Ollama, TGI), asked for
    # `model`; an adapter is asked for by its name (the server serves it under that name). fake: answers with the
    # context sentence that best matches the question, no model.
    backend: Literal["transformers", "llama-cpp", "openai", "fake"] = "llama-cpp"
    model: str = "packaged:SmolLM2-135M-Instruct"
    base_url: str | None = None  # openai: e.g. http://127.0.0.1:8080/v1
    api_key_env: str = "OPENAI_API_KEY"  # openai: the environment variable holding the server's key, if it wants one
    timeout_seconds: float = Field(60, gt=0)  # openai: per request, connecting and between streamed pieces
    max_retries: int = Field(2, ge=0)  # openai: connection errors, 408/409/429 and 5xx, with backoff
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, gt=0)  # llama-cpp: CPU threads; null = every core
    max_new_tokens: int = Field(64, gt=0)
    max_sentences: int = Field(2, ge=0)  # stop once the answer has this many sentences; 0 = no limit
    copy_spans: bool = True  # the answer before its citation stays a span of the blocks (llama-cpp, transformers)
    no_repeat_ngram_size: int = Field(4, ge=0)  # no n-gram twice within the answer (the prompt is exempt)
    # In-process backends, greedy decoding: the answers begun by this many of the likeliest first tokens compete,
    # and the one the model finds likeliest as a whole is returned (once complete, so it streams in one piece);
    # 1 = the greedy answer alone, streamed as it is generated.
    answer_candidates: int = Field(3, ge=1)
    repetition_penalty: float = Field(1.0, gt=0)  # transformers' own: it also penalises copying the prompt
    # The generator declines (with the prompt's refusal sentence) only when it gives that sentence at least this
    # probability; below it the refusal is ruled out and it writes its best answer, which verification still
    # checks. 0 keeps every refusal. In-process backends (llama-cpp, transformers).
    min_refusal_probability: float = Field(0.50, ge=0, le=1)
    # How long a question waits for the generator while others are answered (one at a time in-process),
    # before it gets a 503.
    max_wait_seconds: float = Field(120, gt=0)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    prompt_template: Path = Path("configs/prompt.txt")
    adapters: dict[str, Path] = Field(default_factory=dict)
    default_adapter: str | None = None

    @field_validator("default_adapter", mode="before")
    @classmethod
    def _empty_is_base(cls, value: object) -> object:
        """`RAG_GENERATOR__DEFAULT_ADAPTER=` (empty) answers with the base model."""
        return None if value == "" else value

    def with_only_adapter(self, folder: Path | None) -> GeneratorSettings:
        """These settings serving the adapter in `folder` alone, by default (named after the folder), or the
        base model alone when None."""
        if folder is None:
            return self.model_copy(update={"adapters": {}, "default_adapter": None})
        return self.model_copy(update={"adapters": {folder.name: folder}, "default_adapter": folder.name})


class AnswerSettings(Section):
    # strict: an answer its cited blocks do not back is replaced by the refusal; quote: by the block
    # sentence that best answers the question; off: returned as generated (flagged "verified": false).
    verify: Literal["strict", "quote", "off"] = "quote"
    min_overlap: float = Field(0.5, ge=0, le=1)  # share of the answer's content words found in its blocks
    quotes: bool = True  # each cited block carries the sentence that best supports the answer
    # When the generator declines although the abstention score is at least this, the best block sentence is
    # returned instead (unverified); None always keeps the refusal.
    quote_over_refusal: float | None = None
    # The reader may decline only when its refusal's probability is at least generator.min_refusal_probability *
    # exp(refusal_cosine_weight * (best cosine - retrieval.score_threshold)): blocks that match the question
    # well need a surer refusal. 0: the floor alone. Fitted on the policy set (configs/default.yaml).
    refusal_cosine_weight: float = Field(1.71, ge=0)


class Settings(BaseSettings):
    """configs/default.yaml (or the file RAG_CONFIG names), overridden by RAG_<SECTION>__<KEY> variables.

    Relative paths in the YAML file resolve against the file's folder; those from variables, against the
    working directory."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_nested_delimiter="__", extra="ignore", frozen=True)

    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    ingest: IngestSettings = IngestSettings()
    index: IndexSettings = IndexSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    generator: GeneratorSettings = GeneratorSettings()
    answer: AnswerSettings = AnswerSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlFile(settings_cls, config_file())

    def with_data_dir(self, data_dir: Path) -> Settings:
        """The same settings over another data dir (the eval and fine-tuning index corpora in their own)."""
        return self.model_copy(update={"storage": self.storage.model_copy(update={"data_dir": data_dir})})


def config_file() -> Path:
    configured = os.environ.get(CONFIG_VARIABLE)
    return Path(configured).resolve() if configured else DEFAULT_CONFIG


# (section, key) of every path setting; generator.adapters holds a path per adapter name.
PATH_SETTINGS = [("storage", "data_dir"), ("storage", "model_cache_dir"), ("generator", "prompt_template")]


class _YamlFile(YamlConfigSettingsSource):
    """The YAML file with its relative paths made absolute against its own folder."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"{CONFIG_VARIABLE}={path}: no such settings file")
        self.folder = path.parent
        super().__init__(settings_cls, yaml_file=path)

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        for section, key in PATH_SETTINGS:
            values = data.get(section)
            if isinstance(values, dict) and isinstance(values.get(key), str):
                values[key] = self._resolved(values[key])
        adapters = (data.get("generator") or {}).get("adapters")
        if isinstance(adapters, dict):
            data["generator"]["adapters"] = {
                name: self._resolved(path) if isinstance(path, str) else path for name, path in adapters.items()
            }
        return data

    def _resolved(self, path: str) -> str:
        return path if Path(path).is_absolute() else os.path.normpath(self.folder / path)
