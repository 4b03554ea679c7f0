"""generator.backend llama-cpp: the packaged model through llama.cpp in-process, held to the transformers
backend's contract (test_generation.py) and to its answers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from llama_cpp import llama_cpp

from app.config import GeneratorSettings
from app.errors import AdapterNotFound, GeneratorBusy, ModelUnavailable
from app.generation import build_generator, count_sentences
from app.generation.llama_cpp_backend import LlamaCppGenerator
from app.prompt import NO_ANSWER
from tests.lora import random_lora
from tests.unit.app.test_generation import (
    GLOB_PROMPT,
    JSON_PROMPT,
    MARS_PROMPT,
    REFUND_POLICY,
    REFUND_PROMPT,
    ROOT,
    SETTINGS,
    SHORT,
)

LLAMA = SETTINGS.model_copy(update={"backend": "llama-cpp"})
READER = ROOT / "adapters" / "reader"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")  # its own: the GGUF files are written there once per test run


@pytest.fixture(scope="module")
def generator(cache_dir: Path) -> LlamaCppGenerator:
    """The greedy answer alone, streamed as it is generated."""
    generator = build_generator(LLAMA.model_copy(update={"answer_candidates": 1}), cache_dir)
    assert isinstance(generator, LlamaCppGenerator)
    return generator


@pytest.fixture(scope="module")
def base_answer(generator: LlamaCppGenerator) -> str:
    return generator.generate(REFUND_PROMPT)


def test_a_grounded_question_is_answered_from_the_context(base_answer: str) -> None:
    assert "30" in base_answer
    assert REFUND_POLICY not in base_answer and "<|im_end|>" not in base_answer
    assert base_answer == base_answer.strip()


def test_the_prompt_is_the_one_transformers_reads(generator: LlamaCppGenerator, cache_dir: Path) -> None:
    """The chat template from the GGUF, tokenized by llama.cpp, gives the tokens transformers' template gives."""
    from transformers import AutoTokenizer

    from app.generation.transformers_backend import packaged_cache

    tokenizer = AutoTokenizer.from_pretrained(packaged_cache(SETTINGS.model, cache_dir))
    ours = generator.llm.tokenize(generator.chat(messages=REFUND_PROMPT).prompt.encode(), add_bos=False, special=True)
    assert list(ours) == tokenizer.apply_chat_template(REFUND_PROMPT, add_generation_prompt=True)


def test_the_packaged_model_is_converted_once_to_q8_0(generator: LlamaCppGenerator, cache_dir: Path) -> None:
    (converted,) = cache_dir.glob("SmolLM2-135M-Instruct-*.Q8_0.gguf")
    written = converted.stat().st_mtime_ns
    build_generator(LLAMA, cache_dir)
    assert converted.stat().st_mtime_ns == written


def test_streamed_pieces_join_to_the_generated_answer(generator: LlamaCppGenerator, base_answer: str) -> None:
    pieces = list(generator.stream(REFUND_PROMPT))
    assert len(pieces) > 3 and "".join(pieces) == base_answer


def test_setting_the_stop_event_ends_the_stream_early(generator: LlamaCppGenerator, base_answer: str) -> None:
    stop = threading.Event()
    pieces = []
    for piece in generator.stream(REFUND_PROMPT, stop):
        pieces.append(piece)
        stop.set()
    assert len(pieces) == 1 and base_answer.startswith(pieces[0])


def test_an_abandoned_stream_frees_the_generator(generator: LlamaCppGenerator, base_answer: str) -> None:
    pieces = generator.stream(REFUND_PROMPT)
    next(pieces)
    pieces.close()
    assert generator.generate(REFUND_PROMPT) == base_answer


def test_a_question_that_waits_too_long_gets_busy(generator: LlamaCppGenerator) -> None:
    waits = generator.max_wait_seconds
    generator.max_wait_seconds = 0.05
    try:
        with generator._lock, pytest.raises(GeneratorBusy, match="busy with other questions for 0.05 s"):
            generator.generate(REFUND_PROMPT)
    finally:
        generator.max_wait_seconds = waits


def test_a_sentence_limit_keeps_answers_short(cache_dir: Path) -> None:
    short = build_generator(LLAMA.model_copy(update={"max_new_tokens": 96, "max_sentences": 1}), cache_dir)
    answer = short.generate(REFUND_PROMPT)
    assert count_sentences(answer) <= 1 and "30" in answer


@pytest.fixture(scope="module")
def lora_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    cache = ROOT / ".cache" / "models"  # random_lora builds on transformers' de-quantized copy
    return {"one": random_lora(cache, root / "one", seed=0), "two.v2": random_lora(cache, root / "two", seed=1)}


def test_adapters_answer_as_they_do_alone_in_any_order_and_concurrently(
    cache_dir: Path, lora_folders: dict[str, Path]
) -> None:
    # Greedy: the random adapters move its answer; the likeliest of several candidates they leave alike.
    short = SHORT.model_copy(update={"backend": "llama-cpp", "answer_candidates": 1})
    expected: dict[str | None, str] = {None: build_generator(short, cache_dir).generate(REFUND_PROMPT)}
    for name, folder in lora_folders.items():
        expected[name] = build_generator(short.with_only_adapter(folder), cache_dir).generate(REFUND_PROMPT)
    assert len(set(expected.values())) == 3, expected  # the converted adapters change the answer
    multi = build_generator(short.model_copy(update={"adapters": lora_folders}), cache_dir)
    for adapter in ["two.v2", None, "one", "two.v2", "one", None]:
        assert multi.generate(REFUND_PROMPT, adapter=adapter) == expected[adapter], adapter
    plans: list[list[str | None]] = [["one", None], [None, "two.v2"], ["two.v2", "one"]]
    with ThreadPoolExecutor(max_workers=len(plans)) as pool:
        results = list(pool.map(lambda plan: [multi.generate(REFUND_PROMPT, adapter=a) for a in plan], plans))
    assert results == [[expected[adapter] for adapter in plan] for plan in plans]
    with pytest.raises(AdapterNotFound, match="unknown adapter 'three'"):
        multi.stream(REFUND_PROMPT, adapter="three")


def test_the_shipped_reader_answers_as_with_transformers(cache_dir: Path) -> None:
    reader = build_generator(LLAMA.with_only_adapter(READER), cache_dir)
    assert reader.generate(REFUND_PROMPT) == "30 days [1]."  # what test_adapters.py sees from transformers


def test_a_refusal_the_reader_is_unsure_of_is_ruled_out(cache_dir: Path) -> None:
    reader = LLAMA.model_copy(update={"max_new_tokens": 24}).with_only_adapter(READER)
    always = build_generator(reader.model_copy(update={"min_refusal_probability": 0.0}), cache_dir)
    assert always.generate(MARS_PROMPT) == NO_ANSWER
    # A floor of 1: the refusal floor factor is the floor itself.
    unsure = build_generator(reader.model_copy(update={"min_refusal_probability": 1.0}), cache_dir)
    sure = unsure.refusal_probability(MARS_PROMPT)  # ~0.5: where it falls moves with the CPU's llama.cpp kernels
    assert 0.05 < sure < 0.95
    assert "".join(unsure.stream(MARS_PROMPT, refusal_floor_factor=0.9 * sure)) == NO_ANSWER
    answer = "".join(unsure.stream(MARS_PROMPT, refusal_floor_factor=1.1 * sure))
    assert answer and not answer.startswith("The documents"), answer


def test_the_refusal_probability_is_the_chain_of_its_next_token_probabilities(cache_dir: Path) -> None:
    """One batched pass gives what reading the refusal token by token gives; the question before does not move
    it (the KV cache keeps only the fixed start of the prompt); the answer after it is the answer without it."""
    reader = build_generator(LLAMA.with_only_adapter(READER), cache_dir)
    assert isinstance(reader, LlamaCppGenerator)
    reader._use(reader.default_adapter)
    refusal_probability = reader.refusal_probability
    for messages in (REFUND_PROMPT, MARS_PROMPT):
        text = reader.chat(messages=messages).prompt
        prompt = reader.llm.tokenize(text.encode(), add_bos=False, special=True)
        fixed = reader._fixed_start(text, messages, prompt)
        assert 0 < fixed < len(prompt) and prompt[fixed - 1] != prompt[fixed]
        reader.llm.reset()
        for part in (prompt[:fixed], prompt[fixed:-1], prompt[-1:]):  # batched as _read_prompt does
            reader.llm.eval(part)
        step_by_step = 1.0
        for token in reader.refusal_ids:
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(reader.llm.ctx, -1), shape=(reader.llm.n_vocab(),)
            )
            step_by_step *= float(np.exp(logits[token] - logits.max()) / np.exp(logits - logits.max()).sum())
            reader.llm.eval([token])
        reader.llm.reset()
        first = refusal_probability(messages)
        assert first == pytest.approx(step_by_step, rel=0.1), messages  # batching moves it by a few percent
        assert refusal_probability(messages) == first  # asked again, with all of it in the cache
        refusal_probability(JSON_PROMPT)
        assert refusal_probability(messages) == first  # asked after another question
    assert reader.generate(REFUND_PROMPT) == "30 days [1]."


def test_the_likeliest_of_the_answers_the_likeliest_first_tokens_begin_is_returned(cache_dir: Path) -> None:
    """Greedy decoding commits to its first token; with generator.answer_candidates the answers begun by the next
    likeliest first tokens compete, and the one the model finds likeliest as a whole wins. The winner is never
    less likely than the greedy answer, and it comes in one piece."""
    reader = LLAMA.with_only_adapter(READER)
    greedy = build_generator(reader.model_copy(update={"answer_candidates": 1}), cache_dir)
    best = build_generator(reader.model_copy(update={"answer_candidates": 3}), cache_dir)
    assert isinstance(greedy, LlamaCppGenerator) and isinstance(best, LlamaCppGenerator)
    assert "arbitrary" not in greedy.generate(GLOB_PROMPT).lower()  # "The results are sorted ..."
    assert list(best.stream(GLOB_PROMPT)) == ["Arbitrary order [4]."]

    def logprob(messages: list, answer: str) -> float:
        return best._logprob(best._read(messages, best.default_adapter), answer)

    for messages in (REFUND_PROMPT, JSON_PROMPT, GLOB_PROMPT):
        assert logprob(messages, best.generate(messages)) >= logprob(messages, greedy.generate(messages)), messages
    assert list(best.stream(MARS_PROMPT, refusal_floor_factor=0.001)) == [NO_ANSWER]  # the reader's decision stands


def test_the_reader_copies_its_answer_from_the_block(cache_dir: Path) -> None:
    reader = LLAMA.with_only_adapter(READER)
    assert build_generator(reader, cache_dir).generate(JSON_PROMPT) == "Ignores all but the last name-value pair [1]."
    free = build_generator(reader.model_copy(update={"copy_spans": False}), cache_dir).generate(JSON_PROMPT)
    assert free.startswith("Ignored ")  # left free, it writes a word the block does not have


def test_a_model_llama_cpp_cannot_run_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="needs a packaged model or a .gguf file"):
        build_generator(GeneratorSettings(backend="llama-cpp", model="HuggingFaceTB/SmolLM2-135M"), tmp_path)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf")
    with pytest.raises(ModelUnavailable, match="llama.cpp cannot load"):
        build_generator(GeneratorSettings(backend="llama-cpp", model=str(broken)), tmp_path)


def test_an_adapter_llama_cpp_cannot_apply_is_reported(cache_dir: Path, tmp_path: Path) -> None:
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    (tuned / "adapter_config.json").write_text('{"peft_type": "PROMPT_TUNING"}')
    (tuned / "adapter_model.safetensors").write_bytes(b"weights")
    with pytest.raises(ModelUnavailable, match="cannot convert it to GGUF for llama.cpp: .*only plain LoRA"):
        build_generator(LLAMA.with_only_adapter(tuned), cache_dir)
