"""LoRA adapters as GGUF files for llama.cpp (`python -m finetune gguf`). That llama.cpp applies the converted
shipped reader and answers as transformers does is tested end to end in tests/e2e/test_openai_backend.py."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.torch import load_file

from app.config import GeneratorSettings, StorageSettings
from app.generation.gguf import lora_to_gguf, permute_rows
from app.generation.transformers_backend import packaged_cache
from finetune.__main__ import main
from tests.e2e.conftest import REPO
from tests.llama_server import packaged_gguf
from tests.lora import random_lora

CACHE = REPO / StorageSettings().model_cache_dir


def test_every_adapted_matrix_is_written_under_its_llama_cpp_name(tmp_path: Path) -> None:
    adapter = random_lora(CACHE, tmp_path / "adapter")
    main(["gguf", "--adapter", str(adapter), "--out", str(tmp_path / "adapter.gguf")])
    written = gguf.GGUFReader(tmp_path / "adapter.gguf")
    shapes = {tensor.name: tuple(int(n) for n in tensor.shape) for tensor in written.tensors}
    assert len(shapes) == 30 * 2 * 2  # 30 blocks, q and v, A and B
    # ggml lists dimensions innermost first: A is (r, in) and B (out, r) in numpy's order.
    assert shapes["blk.0.attn_q.weight.lora_a"] == (576, 8)
    assert shapes["blk.0.attn_v.weight.lora_b"] == (8, 192)
    alpha = written.fields[gguf.Keys.Adapter.LORA_ALPHA]
    assert float(alpha.parts[alpha.data[0]][0]) == 8.0  # peft's default alpha for r=8


def test_q_and_k_rows_are_reordered_as_in_the_base_gguf(tmp_path: Path) -> None:
    """The base file's q and k weights are transformers' rows in llama.cpp's rotary order: the same reordering
    must hold for the LoRA's B rows, or the adapter would scramble attention."""
    weights = load_file(packaged_cache(GeneratorSettings().model, CACHE) / "model.safetensors")
    base = {tensor.name: tensor for tensor in gguf.GGUFReader(packaged_gguf()).tensors}
    for name, gguf_name, heads in [("q_proj", "attn_q", 9), ("k_proj", "attn_k", 3)]:
        ours = permute_rows(weights[f"model.layers.0.self_attn.{name}.weight"].numpy(), heads)
        theirs = base[f"blk.0.{gguf_name}.weight"]
        dequantized = gguf.quants.dequantize(theirs.data, theirs.tensor_type).reshape(ours.shape)
        np.testing.assert_allclose(ours, dequantized, atol=1e-6)


def test_only_plain_lora_converts(tmp_path: Path) -> None:
    adapter = tmp_path / "prompt-tuning"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "PROMPT_TUNING"}))
    with pytest.raises(ValueError, match="only plain LoRA adapters convert"):
        lora_to_gguf(adapter, packaged_gguf(), tmp_path / "out.gguf")
