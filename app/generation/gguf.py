"""GGUF files for llama.cpp: the packaged model re-quantized to Q8_0, and peft LoRA adapters as GGUF LoRAs, so
that llama.cpp (in-process, its server, Ollama) runs the adapters this project trains. Both are written once
into the model cache, under names that carry their source's hash. Llama-architecture models only (SmolLM2 is one)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
from safetensors.torch import load_file

from app.errors import ModelUnavailable
from app.packaged import PACKAGED_MODELS, PREFIX, is_packaged, resolve_packaged

# base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight -> model.layers.3.self_attn.q_proj, A
PEFT_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<side>[AB])\.weight$")
LORA_WEIGHTS = "adapter_model.safetensors"


def gguf_model(model: str, cache_dir: Path) -> Path:
    """The GGUF file llama.cpp runs for generator.model: a packaged model as Q8_0 (its Q4_1 weights prefill half
    as fast on CPU: llama.cpp has no fast matrix kernels for Q4_1), or a .gguf path as it is."""
    if not is_packaged(model):
        path = Path(model)
        if path.suffix != ".gguf" or not path.is_file():
            raise ModelUnavailable(f"generator.backend llama-cpp needs a packaged model or a .gguf file, not {model!r}")
        return path
    folder, name = resolve_packaged(model)
    short = model.removeprefix(PREFIX)
    cached = cache_dir / f"{short}-{PACKAGED_MODELS[short].sha256[:12]}.Q8_0.gguf"
    if not cached.is_file():
        _write_atomically(cached, lambda path: requantize(folder / name, path, gguf.GGMLQuantizationType.Q8_0))
    return cached


def gguf_lora(adapter: Path, base: Path, cache_dir: Path) -> Path:
    """The GGUF LoRA of a peft adapter folder (converted once, named by its weights' hash), or a .gguf as it is."""
    if adapter.suffix == ".gguf":
        return adapter
    weights = adapter / LORA_WEIGHTS
    try:
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    except OSError as exc:
        raise ModelUnavailable(f"adapter {adapter}: cannot read {LORA_WEIGHTS}: {exc}") from exc
    cached = cache_dir / f"lora-{adapter.name}-{digest}.gguf"
    if not cached.is_file():
        try:
            _write_atomically(cached, lambda path: lora_to_gguf(adapter, base, path))
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"adapter {adapter}: cannot convert it to GGUF for llama.cpp: {exc}") from exc
    return cached


def requantize(source: Path, out: Path, target: gguf.GGMLQuantizationType) -> None:
    """`source` with every matrix re-quantized to `target` (vectors stay float32), metadata unchanged."""
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(out, str(_field(reader, "general.architecture")))
    for field in reader.fields.values():
        # The writer adds the architecture and GGUF.* itself; the file type no longer holds.
        if field.name in ("general.architecture", "general.file_type") or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        writer.add_key_value(
            field.name, field.contents(), kind, sub_type=field.types[-1] if len(field.types) > 1 else None
        )
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape))  # ggml lists dimensions innermost first
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(np.float32)
        if values.ndim == 1:
            writer.add_tensor(tensor.name, values)
        else:
            writer.add_tensor(tensor.name, gguf.quants.quantize(values, target), raw_dtype=target)
    _write(writer)


def lora_to_gguf(adapter: Path, base_gguf: Path, out: Path) -> int:
    """Write `adapter` (a folder with adapter_config.json and adapter_model.safetensors) as a GGUF LoRA for the
    model in `base_gguf`; returns the number of adapted weight matrices."""
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA" or config.get("use_dora") or config.get("use_rslora"):
        raise ValueError(f"{adapter}: only plain LoRA adapters convert to GGUF (found {config.get('peft_type')})")
    base = gguf.GGUFReader(base_gguf)
    arch = _field(base, "general.architecture")
    if arch != "llama":
        raise ValueError(f"{base_gguf}: architecture {arch!r}; only llama models convert")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, int(_field(base, "llama.block_count")))
    heads = int(_field(base, "llama.attention.head_count"))
    kv_heads = int(_field(base, "llama.attention.head_count_kv"))

    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in load_file(adapter / LORA_WEIGHTS).items():
        match = PEFT_KEY.match(key)
        if match is None:
            raise ValueError(f"{adapter}: unexpected tensor {key}")
        pairs.setdefault(match["module"], {})[match["side"]] = tensor.float().numpy()  # bf16 has no numpy type

    writer = gguf.GGUFWriter(out, arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    for module, sides in sorted(pairs.items()):
        name = names.get_name(module)
        if name is None or set(sides) != {"A", "B"}:
            raise ValueError(f"{adapter}: cannot map {module} to a llama.cpp tensor")
        down, up = sides["A"], sides["B"]  # (r, in) and (out, r), the shapes llama.cpp expects
        # llama.cpp stores q and k with their rotary halves interleaved (as its converter permutes them):
        # the rows of B, which are the weight's output rows, move the same way.
        if module.endswith("q_proj"):
            up = permute_rows(up, heads)
        elif module.endswith("k_proj"):
            up = permute_rows(up, kv_heads)
        writer.add_tensor(f"{name}.weight.lora_a", down)
        writer.add_tensor(f"{name}.weight.lora_b", up)
    _write(writer)
    return len(pairs)


def permute_rows(weights: np.ndarray, heads: int) -> np.ndarray:
    rows = weights.shape[0]
    return weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _write(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _write_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """`write` into a temp file beside `target`, then rename: a crash never leaves half a model file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    try:
        write(Path(staging))
        os.chmod(staging, 0o644)  # mkstemp makes it owner-only; the API and worker may run as other users
        os.replace(staging, target)
    finally:
        Path(staging).unlink(missing_ok=True)


def _field(reader: gguf.GGUFReader, key: str) -> str | int:
    field = reader.fields.get(key)
    if field is None:
        raise ValueError(f"the GGUF file has no {key}")
    value = field.parts[field.data[0]]
    if field.types[0] == gguf.GGUFValueType.STRING:
        return bytes(value).decode("utf-8")
    return int(value[0])
