"""The generator alone, per in-process backend: time to the first token for a 512-token prompt, decode speed,
and decode speed against the machine's ceiling (memory bandwidth / bytes of weights read per token). On the CPU
by default; `--device cuda` runs the transformers backend on the GPU (bf16) against the GPU's bandwidth."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from app.config import Settings
from app.generation import Generator, build_generator
from app.generation.gguf import gguf_model

PROMPT_TOKENS = 512
DECODE_TOKENS = 64
# Prose the model continues without stopping early; repeated to the prompt length.
FILLER = (
    "The service answers questions about an organisation's documents. Uploaded files are parsed, split into "
    "chunks under their headings, embedded and indexed; each question retrieves the best chunks, and a small "
    "language model writes a short answer that cites them. "
)


def memory_bandwidth(device: str = "cpu", megabytes: int = 512, rounds: int = 5) -> float:
    """Bytes per second a large array copy moves on `device`, read and write counted (the best of a few rounds):
    the rate the issue's ceiling is stated in (27 GB/s here, so 180 tokens/s for 145 MB of Q8_0 weights)."""
    if device == "cuda":
        import torch

        gpu_source = torch.ones(megabytes * 1_000_000 // 4, device="cuda")
        gpu_target = torch.empty_like(gpu_source)

        def gpu_copy() -> None:
            gpu_target.copy_(gpu_source)
            torch.cuda.synchronize()

        gpu_copy()  # the first copy pays for kernel loading
        return 2 * gpu_source.nbytes / min(_timed(gpu_copy) for _ in range(rounds))
    source = np.ones(megabytes * 1_000_000 // 8)
    target = np.empty_like(source)
    best = min(_timed(lambda: np.copyto(target, source)) for _ in range(rounds))
    return 2 * source.nbytes / best


def weight_bytes(backend: str, generator: Generator, settings: Settings) -> int:
    """The bytes of weights one decoded token reads: the GGUF file for llama.cpp, the parameters for transformers."""
    if backend == "llama-cpp":
        return gguf_model(settings.generator.model, settings.storage.model_cache_dir).stat().st_size
    model = generator.model  # type: ignore[attr-defined]  # TransformersGenerator's torch model
    return sum(p.numel() * p.element_size() for p in model.parameters())


def run(settings: Settings, backends: list[str], device: str = "cpu") -> dict[str, Any]:
    bandwidth = memory_bandwidth(device)
    results: dict[str, Any] = {"device": device, "memory_bandwidth_gb_s": bandwidth / 1e9, "backends": {}}
    for backend in backends:
        generator_settings = settings.generator.model_copy(
            update={
                "backend": backend,
                "adapters": {},
                "default_adapter": None,
                "max_new_tokens": DECODE_TOKENS,
                "max_sentences": 0,  # decode the full DECODE_TOKENS: a stop at a sentence end would cut it short
                "min_refusal_probability": 0.0,
                "answer_candidates": 1,  # the greedy answer, streamed token by token; candidates come in one piece
                "device": device,
            }
        )
        generator = build_generator(generator_settings, settings.storage.model_cache_dir)
        text = _text_of(generator, backend, PROMPT_TOKENS)
        # A new first line each run: llama.cpp would otherwise reuse the previous run's prompt cache.
        prompts = [[{"role": "user", "content": f"Run {i}.\n{text}\nContinue the text."}] for i in range(4)]
        generator.generate(prompts[0])  # warm-up: first calls allocate caches
        runs = [_timed_stream(generator, prompt) for prompt in prompts[1:]]
        first, total, pieces = min(runs, key=lambda run: run[1])
        tokens = _count_tokens(generator, backend, "".join(pieces))
        decode = (tokens - 1) / (total - first)
        ceiling = bandwidth / weight_bytes(
            backend, generator, settings.model_copy(update={"generator": generator_settings})
        )
        results["backends"][backend] = {
            "prompt_tokens": PROMPT_TOKENS,
            "first_token_s": first,
            "decoded_tokens": tokens,
            "decode_tokens_s": decode,
            "ceiling_tokens_s": ceiling,
            "decode_share_of_ceiling": decode / ceiling,
        }
        del generator
    return results


def _timed_stream(generator: Generator, prompt: list[dict[str, str]]) -> tuple[float, float, list[str]]:
    started = time.perf_counter()
    pieces = generator.stream(prompt)
    first_piece = next(pieces)
    first = time.perf_counter() - started
    rest = list(pieces)
    if not rest:
        raise RuntimeError("the answer came in one piece: its first token's time cannot be told from the decode")
    return first, time.perf_counter() - started, [first_piece, *rest]


def _text_of(generator: Any, backend: str, tokens: int) -> str:
    """FILLER repeated and cut to `tokens` tokens of the generator's own tokenizer."""
    ids = _tokenize(generator, backend, FILLER * (tokens // 20))[:tokens]
    if backend == "llama-cpp":
        return bytes(generator.llm.detokenize(ids)).decode(errors="ignore")
    return str(generator.tokenizer.decode(ids))


def _count_tokens(generator: Any, backend: str, text: str) -> int:
    return len(_tokenize(generator, backend, text))


def _tokenize(generator: Any, backend: str, text: str) -> list[int]:
    if backend == "llama-cpp":
        return list(generator.llm.tokenize(text.encode(), add_bos=False))
    return list(generator.tokenizer(text, add_special_tokens=False)["input_ids"])


def _timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
