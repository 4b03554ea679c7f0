"""A LoRA adapter of the packaged generator with random weights, for tests that need one that changes answers."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from app.config import GeneratorSettings
from app.generation.transformers_backend import packaged_cache


def random_lora(cache_dir: Path, folder: Path, seed: int = 0) -> Path:
    """peft starts LoRA's B at zero, which would leave the model unchanged: B is drawn at random instead."""
    base = AutoModelForCausalLM.from_pretrained(packaged_cache(GeneratorSettings().model, cache_dir))
    lora = get_peft_model(base, LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    lora.save_pretrained(folder)
    return folder
