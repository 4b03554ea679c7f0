"""LoRA training speed: the shipped reader's recipe (LoRA r 16 on the attention and MLP projections, its own
RAFT examples of up to 1536 tokens) for a few optimizer steps, on the CPU or `--device cuda` (bf16 base there):
examples and answer-plus-prompt tokens per second, and what the reader's 300 steps of 8 would take at that rate."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from peft import get_peft_model

from app.config import Settings
from app.generation.transformers_backend import load_causal_lm, pad_token_id
from finetune.records import Example, read_jsonl
from finetune.train import TrainConfig, collate, micro_batch, peft_config, tokenize

EXAMPLES = Path("adapters/reader/data/train.jsonl")
READER = TrainConfig(r=16, alpha=32, mlp=True, lr=5e-4, batch_size=8, grad_accum=1, max_length=1536, steps=300)
# A step of 8 examples of up to 1536 tokens needs over 23 GB in fp32 on the CPU: 2 there, as many steps.
BATCH_SIZE = {"cpu": 2, "cuda": READER.batch_size}
TIMED_STEPS = {"cpu": 3, "cuda": 20}


def run(settings: Settings, device: str = "cpu") -> dict[str, Any]:
    base = load_causal_lm(settings.generator.model, device, settings.storage.model_cache_dir)
    pad_id = pad_token_id(base.tokenizer)
    tokenized = [tokenize(base.tokenizer, example) for example in read_jsonl(EXAMPLES, Example)]
    items = [item for item in tokenized if len(item[0]) <= READER.max_length]
    config = replace(READER, batch_size=BATCH_SIZE[device])
    model = get_peft_model(base.model, peft_config(config))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)

    def step(number: int) -> int:
        batch = micro_batch(items, number, 0, config)
        loss = model(**collate(batch, pad_id, base.device), use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return sum(len(ids) for ids, _ in batch)

    step(0)  # warm-up: first calls allocate
    timed = TIMED_STEPS[device]
    _synchronize(device)
    started = time.perf_counter()
    tokens = sum(step(number) for number in range(1, timed + 1))
    _synchronize(device)
    seconds = time.perf_counter() - started
    return {
        "device": device,
        "steps": timed,
        "batch_size": config.batch_size,
        "seconds_per_step": seconds / timed,
        "examples_per_s": timed * config.batch_size / seconds,
        "tokens_per_s": tokens / seconds,
        # The reader's 300 steps of 8 examples at this rate.
        "reader_run_minutes": READER.steps * READER.batch_size / (timed * config.batch_size / seconds) / 60,
    }


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
