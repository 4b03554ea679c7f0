"""The sentence-transformers backend: the packaged MiniLM by default, or any model id / local path, run by torch
or by ONNX Runtime (`embedding.runtime`: onnx, or onnx-int8 with its weights quantized to 8 bits)."""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import time
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

from app.config import EmbeddingSettings
from app.errors import ModelUnavailable
from app.packaged import is_packaged, resolve_packaged

log = logging.getLogger(__name__)


class SentenceTransformersEmbedder:
    def __init__(self, settings: EmbeddingSettings, cache_dir: Path | None = None) -> None:
        """`cache_dir` keeps the ONNX export of the model (made once, offline, from its local weights)."""
        started = time.perf_counter()
        source = str(resolve_packaged(settings.model)[0]) if is_packaged(settings.model) else settings.model
        try:
            if settings.runtime == "torch":
                self.model = SentenceTransformer(source, device=settings.device)
            else:
                self.model = _onnx_model(source, settings, cache_dir or Path(".cache/models"))
        except Exception as exc:  # any loader failure means the same thing to the user
            raise ModelUnavailable(f"cannot load embedding model {settings.model!r}: {exc}") from exc
        self.batch_size = settings.batch_size
        self.dim = self.model.get_embedding_dimension()
        # torch's vectors keep the name stores recorded before runtimes existed; ONNX's are told apart.
        runtime = "" if settings.runtime == "torch" else f":{settings.runtime}"
        self.name = f"sentence-transformers:{settings.model}{runtime}"
        log.info(
            "embedding model %s (%s) loaded in %.1fs", settings.model, settings.runtime, time.perf_counter() - started
        )

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


def _onnx_model(source: str, settings: EmbeddingSettings, cache_dir: Path) -> SentenceTransformer:
    """The model exported to ONNX (and quantized, for onnx-int8) into `cache_dir` the first time, then loaded."""
    from sentence_transformers import export_dynamic_quantized_onnx_model

    folder = cache_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', settings.model)}-{settings.runtime}"
    if not folder.is_dir():
        log.info("exporting %s to ONNX (%s) in %s, once", settings.model, settings.runtime, folder)
        temp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(temp, ignore_errors=True)
        exported = SentenceTransformer(source, backend="onnx", device=settings.device)  # exports from local weights
        exported.save_pretrained(str(temp))
        if settings.runtime == "onnx-int8":
            export_dynamic_quantized_onnx_model(exported, _quantization(), str(temp))
            (temp / "onnx" / "model.onnx").unlink()  # only the quantized model is used
        try:
            os.replace(temp, folder)
        except OSError:  # another process exported it meanwhile
            shutil.rmtree(temp, ignore_errors=True)
    (model_file,) = (folder / "onnx").glob("model*.onnx")
    file_name = str(model_file.relative_to(folder))
    model: SentenceTransformer = SentenceTransformer(
        str(folder), backend="onnx", device=settings.device, model_kwargs={"file_name": file_name}
    )
    return model


def _quantization() -> str:
    """ONNX Runtime's int8 kernels for this CPU: VNNI where the CPU has it, else AVX2, or ARM64."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_vnni" if "avx512_vnni" in flags else "avx2"
