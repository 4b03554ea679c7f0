"""A peft LoRA adapter as a GGUF LoRA file, so that llama.cpp (its server, Ollama) applies the adapters this
project trains over the GGUF base model. Llama-architecture models only (the packaged SmolLM2 is one)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gguf
import numpy as np
from safetensors.torch import load_file

# base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight -> model.layers.3.self_attn.q_proj, A
PEFT_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<side>[AB])\.weight$")


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
    blocks = int(_field(base, "llama.block_count"))
    heads = int(_field(base, "llama.attention.head_count"))
    kv_heads = int(_field(base, "llama.attention.head_count_kv"))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, blocks)

    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in load_file(adapter / "adapter_model.safetensors").items():
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
            up = _permute_rows(up, heads)
        elif module.endswith("k_proj"):
            up = _permute_rows(up, kv_heads)
        writer.add_tensor(f"{name}.weight.lora_a", down)
        writer.add_tensor(f"{name}.weight.lora_b", up)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return len(pairs)


def _permute_rows(weights: np.ndarray, heads: int) -> np.ndarray:
    rows = weights.shape[0]
    return weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _field(reader: gguf.GGUFReader, key: str) -> str | int:
    field = reader.fields.get(key)
    if field is None:
        raise ValueError(f"the GGUF file has no {key}")
    value = field.parts[field.data[0]]
    if field.types[0] == gguf.GGUFValueType.STRING:
        return bytes(value).decode("utf-8")
    return int(value[0])
