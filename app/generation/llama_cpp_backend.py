"""The llama.cpp backend: the model in-process through llama-cpp-python, the fast path on a CPU. It decodes the
same prompts under the same rules as the transformers backend (sentence limit, no repeated n-gram within the
answer, the refusal floor) and serves the same peft LoRA adapters, converted to GGUF once (app.generation.gguf)."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from llama_cpp import Llama, LogitsProcessorList, llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_types import ChatCompletionRequestMessage, CreateCompletionStreamResponse

from app.config import GeneratorSettings
from app.errors import ModelUnavailable
from app.generation import (
    CopiedSpan,
    checked_default_adapter,
    chosen_adapter,
    count_sentences,
    likeliest_answer,
    repeating_tokens,
    runner_up_first_tokens,
    served_model_name,
    stripped,
    wait_for_turn,
)
from app.generation.gguf import gguf_lora, gguf_model
from app.prompt import NO_ANSWER, Message

log = logging.getLogger(__name__)

Tokens = npt.NDArray[np.intc]
Scores = npt.NDArray[np.single]


class LlamaCppGenerator:
    def __init__(self, settings: GeneratorSettings, cache_dir: Path) -> None:
        started = time.perf_counter()
        self.adapters = tuple(settings.adapters)
        self.default_adapter = checked_default_adapter(settings)
        model_path = gguf_model(settings.model, cache_dir)
        try:
            # n_ctx 0: the model's own context length; a request may ask for up to retrieval.max_top_k blocks.
            # Flash attention reads a 900-token prompt 15-25% faster on 2 cores (measured): the prompt is the cost.
            self.llm = Llama(
                str(model_path),
                n_ctx=0,
                n_threads=settings.threads or os.cpu_count(),
                flash_attn=True,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelUnavailable(f"llama.cpp cannot load {model_path}: {exc}") from exc
        self._loras = {
            name: self._load_lora(name, gguf_lora(path, model_path, cache_dir))
            for name, path in settings.adapters.items()
        }
        self._active: str | None = None  # the adapter whose activations the KV cache holds
        self.model_name = served_model_name(settings)
        self.settings = settings
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelUnavailable(f"{model_path} has no chat template (tokenizer.chat_template)")
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        self.chat = Jinja2ChatFormatter(template, eos_token=self._piece(eos), bos_token=self._piece(bos))
        self.refusal_ids = self.llm.tokenize(NO_ANSWER.encode(), add_bos=False)
        self._lock = threading.Lock()
        self.max_wait_seconds = settings.max_wait_seconds
        log.info(
            "generator %s loaded from %s (llama.cpp) in %.1fs",
            self.model_name,
            model_path,
            time.perf_counter() - started,
        )

    def generate(self, messages: list[Message], adapter: str | None = None) -> str:
        return "".join(self.stream(messages, adapter=adapter))

    def stream(
        self,
        messages: list[Message],
        stop: threading.Event | None = None,
        adapter: str | None = None,
        refusal_floor_factor: float = 1.0,
    ) -> Iterator[str]:
        adapter = chosen_adapter(adapter, self.adapters, self.default_adapter)
        floor = self.settings.min_refusal_probability * refusal_floor_factor
        return stripped(self._stream(messages, stop, adapter, floor))

    def unavailable(self) -> str | None:
        return None  # in-process: once loaded, it stays

    def refusal_probability(self, messages: list[Message], adapter: str | None = None) -> float:
        """The probability that the reply to `messages` is the refusal sentence: what the refusal floor is set
        against (`python -m evaluation.refusal_floor` fits the floor from it)."""
        adapter = chosen_adapter(adapter, self.adapters, self.default_adapter)
        wait_for_turn(self._lock, self.max_wait_seconds)
        try:
            prompt = self._read(messages, adapter)
            return self._refusal_probability(self._reply_logprobs(prompt, self.refusal_ids))
        finally:
            self._lock.release()

    def _stream(
        self, messages: list[Message], stop: threading.Event | None, adapter: str | None, refusal_floor: float
    ) -> Iterator[str]:
        settings = self.settings
        wait_for_turn(self._lock, self.max_wait_seconds)  # one model, one KV cache, one active adapter
        try:
            prompt = self._read(messages, adapter)
            candidates = settings.answer_candidates > 1 and settings.temperature == 0
            # One batched pass over the refusal's tokens: its probability (the floor) and the first token's scores
            # (the candidates' first tokens); neither is needed without a floor and candidates.
            start = self._reply_logprobs(prompt, self.refusal_ids) if refusal_floor > 0 or candidates else None
            rules = _Rules(
                len(prompt),
                settings,
                CopiedSpan(messages[-1]["content"], NO_ANSWER) if settings.copy_spans else None,
                ban_refusal=start is not None and self._refusal_probability(start) < refusal_floor,
            )
            if start is not None and candidates:
                yield self._likeliest_answer(prompt, start[0], rules, stop)
            else:
                yield from self._complete(prompt, rules, stop)
        finally:
            self._lock.release()

    def _complete(self, prompt: list[int], rules: _Rules, stop: threading.Event | None) -> Iterator[str]:
        """The reply to `prompt` (which may end with the reply's first tokens) under `rules`, piece by piece."""
        settings = self.settings
        pieces = cast(
            Iterator[CreateCompletionStreamResponse],
            self.llm.create_completion(
                prompt,
                max_tokens=settings.max_new_tokens - (len(prompt) - rules.prompt_length),
                temperature=settings.temperature,
                top_p=settings.top_p,
                top_k=settings.top_k,
                min_p=0.0,
                repeat_penalty=settings.repetition_penalty,
                logits_processor=LogitsProcessorList(rules.processors(self._text, self.refusal_ids)),
                stream=True,
            ),
        )
        text = self._text(prompt[rules.prompt_length :])
        try:
            for chunk in pieces:
                if stop is not None and stop.is_set():
                    break
                piece = chunk["choices"][0]["text"]
                text += piece
                yield piece
                if settings.max_sentences and count_sentences(text) >= settings.max_sentences:
                    break  # a short answer, and no room for a loop
        finally:
            cast(Generator[Any, None, None], pieces).close()  # ends llama.cpp's generation before the lock is freed

    def _likeliest_answer(self, prompt: list[int], first: Scores, rules: _Rules, stop: threading.Event | None) -> str:
        """The likeliest of the greedy answer and those begun by its runner-up first tokens (likeliest_answer)."""
        greedy = "".join(self._complete(prompt, rules, stop))
        ranked: list[int] = np.argsort(-first)[: CopiedSpan.CANDIDATES].tolist()
        greedy_ids = self.llm.tokenize(greedy.encode(), add_bos=False)
        no_refusal = replace(rules, ban_refusal=True)
        return likeliest_answer(
            greedy,
            stop is not None and stop.is_set(),
            lambda token: float(first[token]),
            runner_up_first_tokens(ranked, rules.span, self._text, greedy_ids, self.refusal_ids),
            self.settings.answer_candidates,
            lambda token: self._text([token]) + "".join(self._complete([*prompt, token], no_refusal, stop)),
            lambda answer: self._logprob(prompt, answer),
        )

    def _logprob(self, prompt: list[int], answer: str) -> float:
        """log P(answer | prompt) under the model (the KV cache holds the prompt but its last token)."""
        ids = self.llm.tokenize(answer.encode(), add_bos=False)
        self.llm.n_tokens = len(prompt) - 1
        return _chain_logprob(self._reply_logprobs(prompt, ids), ids)

    def _text(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", errors="ignore")

    def _read(self, messages: list[Message], adapter: str | None) -> list[int]:
        """The prompt's tokens, all but the last read into the KV cache with `adapter` active (the lock held)."""
        text = self.chat(messages=cast(list[ChatCompletionRequestMessage], messages)).prompt
        prompt = self.llm.tokenize(text.encode(), add_bos=False, special=True)
        self._use(adapter)
        self._read_prompt(prompt, self._fixed_start(text, messages, prompt))
        return prompt

    def _fixed_start(self, text: str, messages: list[Message], prompt: list[int]) -> int:
        """How many tokens of the prompt come before its last message (the system prompt and the chat markup)."""
        start = text.rfind(messages[-1]["content"])
        before = self.llm.tokenize(text[: max(start, 0)].encode(), add_bos=False, special=True)
        return _shared_length(before, prompt)

    def _read_prompt(self, prompt: list[int], fixed: int) -> None:
        """Evaluate all of the prompt but its last token into the KV cache. The cache keeps the fixed start the
        previous prompt shares with this one, and no more: llama.cpp's results move with how the tokens are
        batched (~2% on the refusal's probability), so reusing whatever the previous question left would give
        one question different answers depending on the question before it."""
        llm = self.llm
        cached = llm.input_ids[: llm.n_tokens].tolist()
        if _shared_length(cached, prompt) >= fixed:
            llm.n_tokens = fixed
        else:  # the fixed start in a batch of its own, as when it is reused
            llm.n_tokens = 0
            llm.eval(prompt[:fixed])
        llm.eval(prompt[fixed:-1])  # eval drops the cache past n_tokens itself

    def _refusal_probability(self, start: Scores) -> float:
        """The probability that the reply is the refusal sentence, from `_reply_logprobs(prompt, refusal_ids)`."""
        return float(np.exp(_chain_logprob(start, self.refusal_ids)))

    def _reply_logprobs(self, prompt: list[int], reply: list[int]) -> Scores:
        """The next-token log-probabilities before each token of `reply` (one row each), from one forward pass
        over the prompt's last token (all before it is in the KV cache: _read_prompt) and the reply's tokens but
        its last, a batch that returns every position's next-token distribution. The generation that follows
        reuses the prompt's KV cache."""
        llm = self.llm
        # Llama.eval asks for the last position's logits only: this batch is decoded through its internals
        # (8 tokens at once instead of 8 decoding steps, about 70 ms less per question on 2 cores).
        batch = [prompt[-1], *reply[:-1]]
        llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        llm._batch.set_batch(batch=batch, n_past=llm.n_tokens, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[llm.n_tokens : llm.n_tokens + len(batch)] = batch
        llm.n_tokens += len(batch)
        logits: Scores = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(len(batch), llm.n_vocab()))
        shifted: Scores = logits - logits.max(axis=1, keepdims=True)
        logprobs: Scores = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return logprobs

    def _use(self, adapter: str | None) -> None:
        """Activate `adapter` (None: the base model); the KV cache of another adapter's activations is dropped."""
        if adapter == self._active:
            return
        context = self.llm.ctx
        if adapter is None:
            failed = llama_cpp.llama_set_adapters_lora(context, None, 0, None)
        else:
            lora = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._loras[adapter])
            failed = llama_cpp.llama_set_adapters_lora(context, lora, 1, (ctypes.c_float * 1)(1.0))
        if failed:
            raise ModelUnavailable(f"llama.cpp could not switch to adapter {adapter!r}")
        self.llm.reset()
        self._active = adapter

    def _load_lora(self, name: str, path: Path) -> Any:
        lora = llama_cpp.llama_adapter_lora_init(self.llm.model, str(path).encode())
        if lora is None:
            raise ModelUnavailable(f"llama.cpp cannot load adapter {name!r} from {path}")
        return lora

    def _piece(self, token: int) -> str:
        return "" if token < 0 else self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")


def _chain_logprob(steps: Scores, reply: list[int]) -> float:
    """log P(reply) from `_reply_logprobs(prompt, reply)`: its tokens' log-probabilities, summed."""
    return float(steps[np.arange(len(reply)), reply].sum())


def _shared_length(tokens: list[int], other: list[int]) -> int:
    """How many tokens `tokens` and `other` have in common at their start."""
    return next(
        (i for i, (a, b) in enumerate(zip(tokens, other, strict=False)) if a != b), min(len(tokens), len(other))
    )


@dataclass(frozen=True)
class _Rules:
    """What every answer to one prompt is held to while it decodes."""

    prompt_length: int
    settings: GeneratorSettings
    span: CopiedSpan | None  # generator.copy_spans
    ban_refusal: bool  # the refusal's probability is under the refusal floor

    def processors(self, text: Callable[[list[int]], str], refusal_ids: list[int]) -> list[Any]:
        processors: list[Any] = []
        if self.settings.no_repeat_ngram_size:
            processors.append(_NoRepeatInAnswer(self.settings.no_repeat_ngram_size, self.prompt_length))
        if self.ban_refusal:
            processors.append(_NoRefusal(refusal_ids, self.prompt_length))
        if self.span is not None:
            processors.append(_CopyFromBlocks(self.span, text, self.prompt_length))
        return processors


class _NoRefusal:
    """Rules out the refusal sentence: after its first token ("The"), its second ("documents") is banned."""

    def __init__(self, refusal_ids: list[int], prompt_length: int) -> None:
        self.first, self.second, self.prompt_length = refusal_ids[0], refusal_ids[1], prompt_length

    def __call__(self, input_ids: Tokens, scores: Scores) -> Scores:
        if len(input_ids) == self.prompt_length + 1 and input_ids[-1] == self.first:
            scores[self.second] = -np.inf
        return scores


class _CopyFromBlocks:
    """Keeps the answer a copy of the blocks until its citation (CopiedSpan)."""

    def __init__(self, span: CopiedSpan, text: Callable[[list[int]], str], prompt_length: int) -> None:
        self.span, self.text, self.prompt_length = span, text, prompt_length

    def __call__(self, input_ids: Tokens, scores: Scores) -> Scores:
        answer = input_ids[self.prompt_length :].tolist()
        ranked = np.argpartition(scores, -CopiedSpan.CANDIDATES)[-CopiedSpan.CANDIDATES :]
        ranked = ranked[np.argsort(-scores[ranked])].tolist()
        allowed = self.span.allowed_tokens(self.text(answer), ranked, lambda token: self.text([*answer, token]))
        if allowed:
            kept = scores[allowed].copy()
            scores[:] = -np.inf
            scores[allowed] = kept
        return scores


class _NoRepeatInAnswer:
    """Bans any token that would repeat an n-gram of the answer so far (the prompt is exempt: copying from the
    blocks is what a grounded answer does)."""

    def __init__(self, size: int, prompt_length: int) -> None:
        self.size, self.prompt_length = size, prompt_length

    def __call__(self, input_ids: Tokens, scores: Scores) -> Scores:
        scores[repeating_tokens(input_ids[self.prompt_length :].tolist(), self.size)] = -np.inf
        return scores
