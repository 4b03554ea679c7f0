"""The transformers backend: the model in-process (GPU when there is one), peft adapters over it."""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BatchEncoding,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

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
from app.packaged import PACKAGED_MODELS, PREFIX, is_packaged, resolve_packaged
from app.prompt import NO_ANSWER, Message

log = logging.getLogger(__name__)


class TransformersGenerator:
    def __init__(self, settings: GeneratorSettings, cache_dir: Path) -> None:
        started = time.perf_counter()
        folders = dict(settings.adapters)
        self.adapters = tuple(folders)
        self.default_adapter = checked_default_adapter(settings)  # before the model loads: a config error fails fast
        _check_adapter_kinds(folders)
        base = load_causal_lm(settings.model, settings.device, cache_dir)
        model, self.tokenizer, self.device = base.model, base.tokenizer, base.device
        # peft's own names: a user's name may hold characters (".") that torch module names cannot.
        self._peft_names = {name: f"adapter_{i}" for i, name in enumerate(folders)}
        if folders:
            model = _with_adapters(model, folders, self._peft_names)
        self.model_name = served_model_name(settings)
        # Any: transformers wraps `to` and `generate` in decorators its annotations cannot follow.
        self.model: Any = cast(Any, model).to(self.device).eval()
        self.generation_config = _generation_config(self.model, self.tokenizer, settings)
        self.max_sentences = settings.max_sentences
        self.no_repeat_ngram_size = settings.no_repeat_ngram_size
        self.copy_spans = settings.copy_spans
        self.answer_candidates = settings.answer_candidates
        self._lock = threading.Lock()
        self.max_wait_seconds = settings.max_wait_seconds
        self.min_refusal_probability = settings.min_refusal_probability
        self.refusal_ids: list[int] = self.tokenizer(NO_ANSWER, add_special_tokens=False)["input_ids"]
        elapsed = time.perf_counter() - started
        log.info("generator %s loaded on %s (%s) in %.1fs", self.model_name, self.device, model.dtype, elapsed)

    def generate(self, messages: list[Message], adapter: str | None = None) -> str:
        return "".join(self.stream(messages, adapter=adapter))

    def stream(
        self,
        messages: list[Message],
        stop: threading.Event | None = None,
        adapter: str | None = None,
        refusal_floor_factor: float = 1.0,
    ) -> Iterator[str]:
        adapter = chosen_adapter(adapter, self.adapters, self.default_adapter)  # now, not at the first piece
        floor = self.min_refusal_probability * refusal_floor_factor
        return self._stream(messages, stop, adapter, floor)

    def unavailable(self) -> str | None:
        return None  # in-process: once loaded, it stays

    def _stream(
        self, messages: list[Message], stop: threading.Event | None, adapter: str | None, refusal_floor: float
    ) -> Iterator[str]:
        encoded = self.tokenizer.apply_chat_template(
            messages,
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        prompt = cast(BatchEncoding, encoded).to(self.device)["input_ids"]  # return_dict=True: a BatchEncoding
        span = CopiedSpan(messages[-1]["content"], NO_ANSWER) if self.copy_spans else None
        # One generation at a time, held until the last piece: the API streams from a thread pool and
        # the model, with its one active adapter, is shared.
        wait_for_turn(self._lock, self.max_wait_seconds)
        try:
            if self.answer_candidates > 1 and not self.generation_config.do_sample:
                with torch.inference_mode(), self._using(adapter):
                    answer = self._likeliest_answer(prompt, span, refusal_floor, stop)
                yield from stripped(iter([answer]))
            else:
                yield from self._streamed(prompt, span, refusal_floor, stop, adapter)
        finally:
            self._lock.release()

    def _streamed(
        self,
        prompt: torch.Tensor,
        span: CopiedSpan | None,
        refusal_floor: float,
        stop: threading.Event | None,
        adapter: str | None,
    ) -> Iterator[str]:
        """The greedy (or sampled) answer, piece by piece as it is generated (the lock held)."""
        streamer = TextIteratorStreamer(cast(Any, self.tokenizer), skip_prompt=True, skip_special_tokens=True)
        # Set when the consumer stops early (closes this iterator); `stop` is the caller's own signal.
        halt = threading.Event()
        failure: list[Exception] = []

        def run() -> None:
            try:
                with torch.inference_mode(), self._using(adapter):
                    start = self._start(prompt) if refusal_floor > 0 else None
                    ban_refusal = start is not None and start.refusal < refusal_floor
                    self.model.generate(
                        input_ids=prompt,
                        attention_mask=torch.ones_like(prompt),
                        past_key_values=start.cache if start is not None else None,
                        generation_config=self.generation_config,
                        streamer=streamer,
                        stopping_criteria=self._stopping(prompt.shape[1], halt, stop),
                        logits_processor=self._processors(prompt.shape[1], span, ban_refusal),
                    )
            except Exception as exc:  # re-raised in the consumer's thread, which would otherwise wait forever
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="generate", daemon=True)
        worker.start()
        try:
            yield from stripped(streamer)
        finally:
            halt.set()
            worker.join()
        if failure:
            raise failure[0]

    def _likeliest_answer(
        self, prompt: torch.Tensor, span: CopiedSpan | None, refusal_floor: float, stop: threading.Event | None
    ) -> str:
        """The likeliest of the greedy answer and those begun by its runner-up first tokens (likeliest_answer)."""
        start = self._start(prompt)
        length = prompt.shape[1]
        greedy = self._text(self._complete(prompt, start.cache, span, start.refusal < refusal_floor, stop))
        ranked = start.first.topk(CopiedSpan.CANDIDATES).indices.tolist()

        def begun_with(token: int) -> str:
            begun = torch.cat([prompt, prompt.new_tensor([[token]])], dim=1)
            return self._text(self._complete(begun, start.cache, span, True, stop, length))

        return likeliest_answer(
            greedy,
            stop is not None and stop.is_set(),
            lambda token: float(start.first[token]),
            runner_up_first_tokens(ranked, span, self._text, self._ids(greedy), self.refusal_ids),
            self.answer_candidates,
            begun_with,
            lambda answer: self._logprob(prompt, start.cache, answer),
        )

    def _complete(
        self,
        ids: torch.Tensor,
        cache: Any,
        span: CopiedSpan | None,
        ban_refusal: bool,
        stop: threading.Event | None,
        prompt_length: int | None = None,
    ) -> list[int]:
        """The answer's tokens after the prompt (`ids` may end with the answer's first tokens), in one piece."""
        length = prompt_length or ids.shape[1]
        generated = self.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            past_key_values=copy.deepcopy(cache),  # generate extends it; every answer starts from the prompt's
            generation_config=self.generation_config,
            max_new_tokens=self.generation_config.max_new_tokens - (ids.shape[1] - length),
            stopping_criteria=self._stopping(length, stop),
            logits_processor=self._processors(length, span, ban_refusal),
        )
        return cast(list[int], generated[0, length:].tolist())

    def _logprob(self, prompt: torch.Tensor, cache: Any, answer: str) -> float:
        """log P(answer | prompt), from one pass over the prompt's last token and the answer's tokens but its last
        (`cache` holds the prompt but its last token; None: over the whole prompt)."""
        ids = self._ids(answer)
        if not ids:
            return -math.inf
        # Without a cache (a prompt-tuning adapter: see _start) the whole prompt is read again.
        read = prompt if cache is None else prompt[:, -1:]
        batch = torch.cat([read, prompt.new_tensor([ids[:-1]])], dim=1)
        past = None if cache is None else copy.deepcopy(cache)
        out = self.model(input_ids=batch, past_key_values=past, use_cache=past is not None, logits_to_keep=len(ids))
        log_probs = out.logits[0].float().log_softmax(-1)
        return float(log_probs.gather(1, prompt.new_tensor([ids]).T).sum())

    def _start(self, prompt_ids: torch.Tensor) -> _Start:
        """The refusal's probability, the first token's log-probabilities and the prompt's cache for the
        generation, from one forward pass (so the check costs the refusal's few tokens, not a second prompt)."""
        refusal = torch.tensor([self.refusal_ids], device=prompt_ids.device)
        # Logits only where they predict a refusal token: the prompt's last position and the refusal's own.
        kept = refusal.shape[1] + 1
        out = self.model(input_ids=torch.cat([prompt_ids, refusal], dim=1), use_cache=True, logits_to_keep=kept)
        length = prompt_ids.shape[1]
        log_probs = out.logits[0, -kept:-1].float().log_softmax(-1)
        probability = float(log_probs.gather(1, refusal.T).sum().exp())
        cache = out.past_key_values
        if cache.get_seq_length() != length + refusal.shape[1]:
            # A prompt-tuning adapter's virtual tokens are in the cache too, where generate does not expect them.
            return _Start(probability, log_probs[0], None)
        cache.crop(length - 1)  # generate feeds the prompt's last token itself
        return _Start(probability, log_probs[0], cache)

    def _processors(self, prompt_length: int, span: CopiedSpan | None, ban_refusal: bool) -> LogitsProcessorList:
        processors: list[LogitsProcessor] = []
        if self.no_repeat_ngram_size:
            processors.append(_NoRepeatInAnswer(self.no_repeat_ngram_size, prompt_length))
        if ban_refusal:
            processors.append(_NoRefusal(self.refusal_ids, prompt_length))
        if span is not None:  # after the bans, so that it ranks what they leave
            processors.append(_CopyFromBlocks(span, self._text, prompt_length))
        return LogitsProcessorList(processors)

    def _stopping(self, prompt_length: int, *events: threading.Event | None) -> StoppingCriteriaList:
        stopping: list[StoppingCriteria] = [_EventSet(*events)]
        if self.max_sentences:
            stopping.append(_SentenceLimit(self.tokenizer, prompt_length, self.max_sentences))
        return StoppingCriteriaList(stopping)

    def _text(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def _ids(self, text: str) -> list[int]:
        return cast(list[int], self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @contextmanager
    def _using(self, adapter: str | None) -> Iterator[None]:
        """The model with one adapter active, or with none (the base model); the caller holds the lock."""
        if not self._peft_names:
            yield
        elif adapter is None:
            with self.model.disable_adapter():
                yield
        else:
            self.model.set_adapter(self._peft_names[adapter], inference_mode=True)
            yield


class _EventSet(StoppingCriteria):
    """Stops generation after the current token once any of the events is set."""

    def __init__(self, *events: threading.Event | None) -> None:
        self.events = [event for event in events if event is not None]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        stopped = any(event.is_set() for event in self.events)
        flags = torch.full((input_ids.shape[0],), stopped, dtype=torch.bool, device=input_ids.device)
        return cast(torch.BoolTensor, flags)


class _SentenceLimit(StoppingCriteria):
    """Stops once the answer holds `limit` sentences: a short answer, and no room for a loop."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_length: int, limit: int) -> None:
        self.tokenizer, self.prompt_length, self.limit = tokenizer, prompt_length, limit

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        done = [
            count_sentences(self.tokenizer.decode(row[self.prompt_length :], skip_special_tokens=True)) >= self.limit
            for row in input_ids
        ]
        return cast(torch.BoolTensor, torch.tensor(done, dtype=torch.bool, device=input_ids.device))


class _NoRefusal(LogitsProcessor):
    """Rules out the refusal sentence: after its first token ("The"), its second ("documents") is banned."""

    def __init__(self, refusal_ids: list[int], prompt_length: int) -> None:
        self.first, self.second, self.prompt_length = refusal_ids[0], refusal_ids[1], prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] == self.prompt_length + 1:
            scores[input_ids[:, -1] == self.first, self.second] = -float("inf")
        return scores


class _CopyFromBlocks(LogitsProcessor):
    """Keeps the answer a copy of the blocks until its citation (CopiedSpan), as the llama-cpp backend."""

    def __init__(self, span: CopiedSpan, text: Callable[[list[int]], str], prompt_length: int) -> None:
        self.span, self.text, self.prompt_length = span, text, prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row, ids in enumerate(input_ids[:, self.prompt_length :].tolist()):
            ranked = scores[row].topk(CopiedSpan.CANDIDATES).indices.tolist()
            allowed = self.span.allowed_tokens(self.text(ids), ranked, partial(self._extended, ids))
            if allowed:
                kept = scores[row, allowed].clone()
                scores[row] = -float("inf")
                scores[row, allowed] = kept
        return scores

    def _extended(self, ids: list[int], token: int) -> str:
        return self.text([*ids, token])


class _NoRepeatInAnswer(LogitsProcessor):
    """Bans any token that would repeat an n-gram of the answer so far.

    transformers' `no_repeat_ngram_size` counts the prompt too, which would forbid copying a phrase from
    the context blocks: exactly what a grounded answer does."""

    def __init__(self, size: int, prompt_length: int) -> None:
        self.size, self.prompt_length = size, prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row, ids in enumerate(input_ids[:, self.prompt_length :].tolist()):
            scores[row, repeating_tokens(ids, self.size)] = -float("inf")
        return scores


def packaged_cache(model: str, cache_dir: Path) -> Path:
    """Folder of a packaged GGUF model saved as safetensors; de-quantizing it once takes ~20 s."""
    folder, gguf_file = resolve_packaged(model)
    name = model.removeprefix(PREFIX)
    # The weights' hash in the name: a new package version never loads a stale cache.
    cached = cache_dir / f"{re.sub(r'[^A-Za-z0-9._-]', '_', name)}-{PACKAGED_MODELS[name].sha256[:12]}"
    if (cached / "config.json").is_file():
        return cached
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        model_fp32 = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    except Exception as exc:
        raise ModelUnavailable(f"cannot load packaged model {model!r}: {exc}") from exc
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Save beside the target, then rename: a crash leaves only a temp folder, never a half cache.
    staging = Path(tempfile.mkdtemp(prefix=f".{cached.name}.", dir=cache_dir))
    try:
        model_fp32.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        # mkdtemp (and safetensors) create owner-only modes; the API and worker may run as other users.
        for path in [staging, *staging.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        staging.rename(cached)
    except OSError:
        if not (cached / "config.json").is_file():  # else another process finished first: use its cache
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("packaged model %s de-quantized and cached at %s in %.1fs", model, cached, time.perf_counter() - started)
    return cached


def _pick_device(setting: str) -> str:
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("generator.device is 'cuda' but torch sees no CUDA device")
    return setting


def _check_adapter_kinds(folders: dict[str, Path]) -> None:
    kinds = {name: _peft_type(name, path) for name, path in folders.items()}
    if len(set(kinds.values())) > 1:
        listed = ", ".join(f"{name} ({kind})" for name, kind in kinds.items())
        raise ModelUnavailable(
            f"adapters of different kinds cannot be served together: {listed}; "
            "peft holds one kind per model (LoRA adapters of one base model mix freely)"
        )


def _with_adapters(model: PreTrainedModel, folders: dict[str, Path], peft_names: dict[str, str]) -> PreTrainedModel:
    """One PeftModel holding every adapter over the one base model."""
    from peft import PeftModel  # only adapter users pay for importing peft

    for name, path in folders.items():
        try:
            if isinstance(model, PeftModel):
                model.load_adapter(str(path), adapter_name=peft_names[name])
            else:
                adapted = PeftModel.from_pretrained(model, str(path), adapter_name=peft_names[name])
                model = cast(PreTrainedModel, adapted)
        except Exception as exc:
            raise ModelUnavailable(f"cannot load adapter {name!r} from {path}: {exc}") from exc
    return model


def _peft_type(name: str, path: Path) -> str:
    config = path / "adapter_config.json"
    if not config.is_file():
        raise ModelUnavailable(f"adapter {name!r}: {path} not found: expected a folder with adapter_config.json")
    try:
        return str(json.loads(config.read_text(encoding="utf-8"))["peft_type"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailable(f"adapter {name!r}: {config} is not a peft adapter config: {exc!r}") from exc


def _generation_config(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, settings: GeneratorSettings
) -> GenerationConfig:
    config = decoding_config(model, settings.temperature, settings.top_p, settings.top_k)
    config.max_new_tokens = settings.max_new_tokens
    config.repetition_penalty = settings.repetition_penalty
    if config.pad_token_id is None:
        config.pad_token_id = pad_token_id(tokenizer)
    return config


@dataclass(frozen=True)
class _Start:
    """What one forward pass over the prompt and the refusal sentence tells (TransformersGenerator._start)."""

    refusal: float  # the refusal sentence's probability
    first: torch.Tensor  # log-probabilities of the answer's first token
    cache: Any  # the prompt's cache, but its last token (None with a prompt-tuning adapter)


@dataclass(frozen=True)
class CausalLM:
    model: Any  # a PreTrainedModel; Any because transformers wraps `to` and `generate` past its annotations
    tokenizer: PreTrainedTokenizerBase
    device: str


def load_causal_lm(model_name: str, device_setting: str, cache_dir: Path) -> CausalLM:
    """The model and its tokenizer as the service runs them: a packaged model from its de-quantized cache, fp32
    on the CPU, bf16 on CUDA, in eval mode. Fine-tuning and probing load the base model here too."""
    device = _pick_device(device_setting)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    source = packaged_cache(model_name, cache_dir) if is_packaged(model_name) else model_name
    try:
        tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(source)
        model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except Exception as exc:  # any loader failure means the same thing to the user
        raise ModelUnavailable(f"cannot load generator model {model_name!r}: {exc}") from exc
    return CausalLM(cast(Any, model).to(device).eval(), tokenizer, device)


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The tokenizer's pad token, or its end-of-sequence token: the packaged tokenizer has no pad token."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ModelUnavailable("the tokenizer has neither a pad nor an end-of-sequence token")
    return int(pad)


def decoding_config(model: Any, temperature: float, top_p: float = 1.0, top_k: int = 0) -> GenerationConfig:
    """The model's generation config for greedy decoding (temperature 0) or sampling."""
    config = copy.deepcopy(model.generation_config) or GenerationConfig()
    if temperature == 0:
        # Greedy; clearing the model's own sampling defaults avoids "do_sample is False" warnings.
        config.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        config.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k)
    return config
