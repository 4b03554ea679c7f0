"""The one settings object: configs/default.yaml, overridden by RAG_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    max_file_bytes: int = Field(20_000_000, gt=0)
    max_files_per_request: int = Field(20, gt=0)
    max_request_bytes: int = Field(200_000_000, gt=0)
    max_question_chars: int = Field(2000, gt=0)


class StorageSettings(BaseModel):
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


class IngestSettings(BaseModel):
    poll_seconds: float = Field(0.5, gt=0)
    lease_seconds: float = Field(60, gt=0)
    max_attempts: int = Field(3, gt=0)
    batch_size: int = Field(16, gt=0)
    pdf_parser: Literal["pypdf", "dedoc"] = "pypdf"
    chunk_size: int = Field(800, gt=0)
    chunk_overlap: int = Field(120, ge=0)
    keep_generations: int = Field(2, ge=1)


class EmbeddingSettings(BaseModel):
    # fake: hashed word counts, no model; for tests and for working on the API and the chat page.
    backend: Literal["sentence-transformers", "fake"] = "sentence-transformers"
    model: str = "packaged:all-MiniLM-L6-v2"
    batch_size: int = Field(32, gt=0)
    device: str = "cpu"


class RetrievalSettings(BaseModel):
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


class GeneratorSettings(BaseModel):
    # fake: answers with the context sentence that best matches the question, no model; for tests.
    backend: Literal["transformers", "fake"] = "transformers"
    model: str = "packaged:SmolLM2-135M-Instruct"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_new_tokens: int = Field(64, gt=0)
    max_sentences: int = Field(2, ge=0)  # stop once the answer has this many sentences; 0 = no limit
    no_repeat_ngram_size: int = Field(4, ge=0)  # no n-gram twice within the answer (the prompt is exempt)
    repetition_penalty: float = Field(1.0, gt=0)  # transformers' own: it also penalises copying the prompt
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    prompt_template: Path = Path("configs/prompt.txt")
    adapters: dict[str, Path] = Field(default_factory=dict)
    default_adapter: str | None = None
    adapter_path: Path | None = None

    @field_validator("default_adapter", mode="before")
    @classmethod
    def _empty_is_base(cls, value: object) -> object:
        """`RAG_GENERATOR__DEFAULT_ADAPTER=` (empty) answers with the base model."""
        return None if value == "" else value

    def adapter_folders(self) -> dict[str, Path]:
        """Every adapter by name; the older single `adapter_path` counts as one named after its folder."""
        if self.adapter_path is None:
            return dict(self.adapters)
        return {self.adapter_path.name: self.adapter_path, **self.adapters}

    def default_adapter_name(self) -> str | None:
        """The adapter a request that names none is answered with; None is the base model."""
        if self.default_adapter is None and self.adapter_path is not None:
            return self.adapter_path.name
        return self.default_adapter


class AnswerSettings(BaseModel):
    # strict: an answer its cited blocks do not back is replaced by the refusal; quote: by the block
    # sentence that best answers the question; off: returned as generated (flagged "verified": false).
    verify: Literal["strict", "quote", "off"] = "quote"
    min_overlap: float = Field(0.5, ge=0, le=1)  # share of the answer's content words found in its blocks
    quotes: bool = True  # each cited block carries the sentence that best supports the answer
    # When the generator declines although the abstention score is at least this, the best block sentence is
    # returned instead (unverified); None always keeps the refusal.
    quote_over_refusal: float | None = None


class Settings(BaseSettings):
    """Nested sections; RAG_DATA_DIR / RAG_HOST / RAG_PORT are shortcuts for the common three."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_nested_delimiter="__", extra="ignore")

    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    ingest: IngestSettings = IngestSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    generator: GeneratorSettings = GeneratorSettings()
    answer: AnswerSettings = AnswerSettings()

    data_dir: Path | None = None
    host: str | None = None
    port: int | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file=DEFAULT_CONFIG),
        )

    def model_post_init(self, context: object) -> None:
        if self.data_dir is not None:
            self.storage.data_dir = self.data_dir
        if self.host is not None:
            self.server.host = self.host
        if self.port is not None:
            self.server.port = self.port
