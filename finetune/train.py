"""Trains a peft adapter (LoRA or prompt tuning) on the generator: one loop to read top to bottom."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import torch
from peft import (
    LoraConfig,
    PeftConfig,
    PeftModel,
    PromptTuningConfig,
    PromptTuningInit,
    TaskType,
    get_peft_model,
    set_peft_model_state_dict,
)
from safetensors.torch import load_file
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from app.config import GeneratorSettings
from app.generation import ADAPTER_CARD
from app.generation.transformers_backend import load_causal_lm, pad_token_id
from evaluation.metrics import mean
from finetune.data import label_mix
from finetune.records import Example

log = logging.getLogger(__name__)

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]
# Prompt tuning moves a few embeddings a long way and wants a much larger step than LoRA.
DEFAULT_LR = {"lora": 2e-4, "prompt-tuning": 3e-2}
CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.pt"
IGNORE = -100  # the label that takes a token out of the loss
LOSS_WINDOW = 10  # steps averaged for the first and last loss of a run
Item = TypeVar("Item")


@dataclass
class TrainConfig:
    """Every knob of a run, apart from the code that applies it; copied into the adapter card."""

    method: Literal["lora", "prompt-tuning"] = "lora"
    # LoRA
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(ATTENTION))
    mlp: bool = False  # also adapt the MLP projections (gate / up / down)
    # Prompt tuning
    num_virtual_tokens: int = 20
    # Optimisation
    lr: float | None = None  # None: DEFAULT_LR of the method
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    steps: int = 200  # optimizer steps, each of batch_size * grad_accum examples
    batch_size: int = 2  # x grad_accum = 8 examples per step; batch 8 at 1024 tokens took 23 GB on CPU
    grad_accum: int = 4
    max_length: int = 1024  # longer examples (prompt + answer tokens) are left out, never cut
    seed: int = 0
    save_every: int = 50
    # Held-out answer loss (when held-out examples are given), every eval_every steps, on eval_examples of them.
    eval_every: int = 50
    eval_examples: int = 64
    output: Path = Path("adapters/adapter")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]

    @property
    def modules(self) -> list[str]:
        return [*self.target_modules, *(m for m in MLP if self.mlp and m not in self.target_modules)]


def peft_config(config: TrainConfig) -> PeftConfig:
    if config.method == "lora":
        return LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=config.r,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=config.modules,
        )
    # Virtual tokens start as embeddings of random vocabulary tokens: the right scale, no tokenizer path needed.
    return PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM,
        num_virtual_tokens=config.num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB,
    )


# Data: chat-template tokens, loss on the answer only


def tokenize(tokenizer: PreTrainedTokenizerBase, example: Example) -> tuple[list[int], list[int]]:
    """(input ids, labels) of prompt + reply; the prompt's labels are IGNORE, so only the reply is learnt."""
    reply = {"role": "assistant", "content": example.target}
    # With tokenize=True and no return_dict, the template gives the token ids.
    prompt = cast(list[int], tokenizer.apply_chat_template(example.messages, add_generation_prompt=True, tokenize=True))
    full = cast(list[int], tokenizer.apply_chat_template([*example.messages, reply], tokenize=True))
    if full[: len(prompt)] != prompt:
        raise ValueError("the chat template does not extend the prompt with the reply: cannot mask the prompt")
    return full, [IGNORE] * len(prompt) + full[len(prompt) :]


def collate(items: list[tuple[list[int], list[int]]], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    """Right-padded tensors; padding is masked from attention and from the loss."""
    width = max(len(ids) for ids, _ in items)
    ids = [ids + [pad_id] * (width - len(ids)) for ids, _ in items]
    labels = [labels + [IGNORE] * (width - len(labels)) for _, labels in items]
    mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in items]
    return {
        "input_ids": torch.tensor(ids, device=device),
        "labels": torch.tensor(labels, device=device),
        "attention_mask": torch.tensor(mask, device=device),
    }


@functools.lru_cache(maxsize=4)
def _epoch_order(size: int, epoch: int, seed: int) -> tuple[int, ...]:
    order = list(range(size))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return tuple(order)


def micro_batch(items: list[Item], step: int, micro: int, config: TrainConfig) -> list[Item]:
    """Micro-batch `micro` of optimizer step `step`, from a seeded shuffle per epoch.

    A function of the step alone, so a resumed run sees exactly the data the first run would have."""
    start = (step * config.grad_accum + micro) * config.batch_size
    positions = range(start, start + config.batch_size)
    return [items[_epoch_order(len(items), p // len(items), config.seed)[p % len(items)]] for p in positions]


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak (nanoGPT's schedule)."""
    peak = config.learning_rate
    if step < config.warmup_steps:
        return peak * (step + 1) / (config.warmup_steps + 1)
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress))))


def examples_sha256(examples: list[Example]) -> str:
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps(asdict(example), sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


# The loop


def train(
    generator_settings: GeneratorSettings,
    cache_dir: Path,
    examples: list[Example],
    config: TrainConfig,
    resume: bool = False,
    metrics: dict[str, Any] | None = None,
    held_out: list[Example] | None = None,
) -> dict[str, Any]:
    """Train an adapter on `examples`, checkpointing as it goes; save it with its card to `config.output`.

    With `held_out` examples, their answer loss is measured every `config.eval_every` steps and at the end:
    the curve and its best step go into the result (and the card), to see when training starts to overfit."""
    started = time.perf_counter()
    output = Path(config.output)
    torch.manual_seed(config.seed)

    # The base model exactly as the service loads it (fp32 on CPU, bf16 on CUDA), without any adapter.
    base = load_causal_lm(generator_settings.model, generator_settings.device, cache_dir)
    tokenizer, device = base.tokenizer, base.device
    pad_id = pad_token_id(tokenizer)

    tokenized = [tokenize(tokenizer, example) for example in examples]
    items = [item for item in tokenized if len(item[0]) <= config.max_length]
    if not items:
        raise ValueError(f"no example fits in max_length={config.max_length} tokens")
    if len(items) < len(tokenized):
        left_out = len(tokenized) - len(items)
        log.warning(
            "%d of %d examples are longer than %d tokens: left out", left_out, len(tokenized), config.max_length
        )
    data_hash = examples_sha256(examples)

    model = get_peft_model(base.model, peft_config(config))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    trainable_count, total_count = model.get_nb_trainable_parameters()
    log.info("%s: %d of %d parameters trainable, on %s", config.method, trainable_count, total_count, device)

    start = 0
    checkpoint = last_checkpoint(output) if resume else None
    if checkpoint is not None:
        start = load_checkpoint(checkpoint, model, optimizer, data_hash)
        log.info("resuming from %s at step %d", checkpoint, start)
    elif resume:
        log.info("no checkpoint under %s: starting at step 0", output / CHECKPOINTS)

    watched = (held_out or [])[: config.eval_examples]
    held_out_losses: list[dict[str, float]] = []
    model.train()
    losses: list[float] = []
    progress = tqdm(range(start, config.steps), initial=start, total=config.steps, desc=config.method, unit="step")
    for step in progress:
        lr = learning_rate(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = 0.0
        for micro in range(config.grad_accum):
            batch = collate(micro_batch(items, step, micro, config), pad_id, device)
            loss = model(**batch, use_cache=False).loss / config.grad_accum
            loss.backward()
            step_loss += loss.item()
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss)
        progress.set_postfix(loss=f"{step_loss:.4f}", lr=f"{lr:.1e}")
        done = step + 1
        if watched and (done % config.eval_every == 0 or done == config.steps):
            held_out_losses.append({"step": done, "loss": round(answer_loss(model, tokenizer, watched), 4)})
            log.info("step %d: held-out answer loss %.4f", done, held_out_losses[-1]["loss"])
        if done % config.save_every == 0 or done == config.steps:
            save_checkpoint(output / CHECKPOINTS / f"step-{done}", model, optimizer, done, data_hash)

    model.save_pretrained(str(output))
    result = {
        "steps": max(start, config.steps),
        "start_step": start,
        # One step's loss is of a few examples and jumps about: report the means of the first and last steps.
        "first_loss": mean(losses[:LOSS_WINDOW]) if losses else None,
        "last_loss": mean(losses[-LOSS_WINDOW:]) if losses else None,
        "held_out_loss": held_out_losses,
        "best_held_out_step": min(held_out_losses, key=lambda p: p["loss"])["step"] if held_out_losses else None,
        "examples": len(items),
        "label_mix": label_mix(examples),
        "skipped_too_long": len(tokenized) - len(items),
        "trainable_parameters": trainable_count,
        "seconds": round(time.perf_counter() - started, 1),
    }
    card = adapter_card(generator_settings.model, config, data_hash, result, metrics)
    (output / ADAPTER_CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    log.info("adapter saved to %s after %d steps (loss %s)", output, result["steps"], result["last_loss"])
    return result


def adapter_card(
    base_model: str, config: TrainConfig, data_hash: str, result: dict[str, Any], metrics: dict[str, Any] | None
) -> dict[str, Any]:
    """What GET /adapters shows: where the adapter comes from and how it was made."""
    return {
        "base_model": base_model,
        "method": config.method,
        "data_sha256": data_hash,
        "examples": result["examples"],
        "label_mix": result["label_mix"],
        "parameters": {**asdict(config), "output": str(config.output), "learning_rate": config.learning_rate},
        "trainable_parameters": result["trainable_parameters"],
        "steps": result["steps"],
        "final_loss": result["last_loss"],
        "held_out_loss": result["held_out_loss"],
        "metrics": metrics or {},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# Checkpoints: adapter weights + optimizer state + step + RNG state


def save_checkpoint(
    folder: Path, model: PeftModel, optimizer: torch.optim.Optimizer, step: int, data_hash: str
) -> None:
    # Written beside the target and renamed: a crash never leaves a half checkpoint to resume from.
    staging = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data_sha256": data_hash,
    }
    torch.save(state, staging / STATE_FILE)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def last_checkpoint(output: Path) -> Path | None:
    folders = [f for f in (output / CHECKPOINTS).glob("step-*") if (f / STATE_FILE).is_file()]
    return max(folders, key=lambda f: int(f.name.removeprefix("step-")), default=None)


def load_checkpoint(folder: Path, model: PeftModel, optimizer: torch.optim.Optimizer, data_hash: str) -> int:
    """Restore a checkpoint into the model and optimizer; returns the number of steps already done."""
    state = torch.load(folder / STATE_FILE, weights_only=True)
    if state["data_sha256"] != data_hash:
        raise ValueError(f"{folder} was trained on other examples: resume only with the same examples file")
    set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"])


def add_metrics_to_card(adapter: Path, metrics: dict[str, Any]) -> None:
    """Merge evaluation results into an adapter's card (GET /adapters shows them)."""
    path = adapter / ADAPTER_CARD
    card = json.loads(path.read_text(encoding="utf-8"))
    card["metrics"] = {**card.get("metrics", {}), **metrics}
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")


@torch.no_grad()
def answer_loss(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, examples: list[Example]) -> float:
    """Mean cross-entropy per answer token of `examples` (prompt tokens excluded), in eval mode."""
    was_training = model.training
    model.eval()
    pad_id = pad_token_id(tokenizer)
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    for example in examples:
        batch = collate([tokenize(tokenizer, example)], pad_id, str(device))
        counted = int((batch["labels"][:, 1:] != IGNORE).sum())  # the model shifts labels by one
        total += model(**batch).loss.item() * counted
        tokens += counted
    model.train(was_training)
    return total / tokens
