from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

import app.generation.transformers_backend as generation
from app.config import GeneratorSettings, StorageSettings
from app.errors import AdapterNotFound, GeneratorBusy, ModelUnavailable
from app.generation import CopiedSpan, Generator, build_generator, count_sentences
from app.generation.transformers_backend import TransformersGenerator, packaged_cache
from app.prompt import NO_ANSWER, build_prompt, load_template
from app.retrieval import RetrievedChunk
from app.store import Chunk
from tests.lora import random_lora

ROOT = Path(__file__).resolve().parents[3]
# The greedy answer alone, streamed as it is generated (answer candidates return one piece).
SETTINGS = GeneratorSettings(backend="transformers", max_new_tokens=48, answer_candidates=1)
# Adapter tests compare many answers; a few tokens tell them apart (a random adapter rambles to the limit).
SHORT = GeneratorSettings(backend="transformers", max_new_tokens=12, answer_candidates=1)
REFUND_POLICY = "Refunds are accepted within 30 days of purchase."
# The service's own template, so the test answers the prompt users' questions get.
REFUND_PROMPT = build_prompt(
    load_template(ROOT / "configs" / "prompt.txt"),
    "How many days do customers have to request a refund?",
    [RetrievedChunk(Chunk(1, "doc", "policy.md", 0, "Refund policy", REFUND_POLICY), 0.9)],
)
MARS_PROMPT = build_prompt(  # a question the refund policy does not answer
    load_template(ROOT / "configs" / "prompt.txt"),
    "What is the capital of Mars?",
    [RetrievedChunk(Chunk(1, "doc", "policy.md", 0, "Refund policy", REFUND_POLICY), 0.9)],
)
GLOB = json.loads((Path(__file__).parent / "glob_blocks.json").read_text(encoding="utf-8"))
GLOB_PROMPT = build_prompt(  # the reader's greedy answer is wrong; block 4 says "returned in arbitrary order"
    load_template(ROOT / "configs" / "prompt.txt"),
    GLOB["question"],
    [
        RetrievedChunk(Chunk(n, "glob", block["filename"], n, block["section"], block["text"]), 0.6)
        for n, block in enumerate(GLOB["blocks"])
    ],
)


@pytest.fixture(scope="module")
def cache_dir() -> Path:
    # The service's own default cache: only the first run ever pays the ~20 s de-quantization.
    return ROOT / StorageSettings().model_cache_dir


@pytest.fixture(scope="module")
def generator(cache_dir: Path) -> TransformersGenerator:
    return TransformersGenerator(SETTINGS, cache_dir)


@pytest.fixture(scope="module")
def base_answer(generator: Generator) -> str:
    return generator.generate(REFUND_PROMPT)


def test_a_grounded_question_is_answered_from_the_context(base_answer: str) -> None:
    assert "30" in base_answer
    assert REFUND_POLICY not in base_answer and "Question:" not in base_answer  # not an echo of the prompt
    assert "<|im_end|>" not in base_answer and "assistant" not in base_answer
    assert base_answer == base_answer.strip()


def test_streamed_pieces_join_to_the_generated_answer(generator: Generator, base_answer: str) -> None:
    pieces = list(generator.stream(REFUND_PROMPT))
    assert len(pieces) > 3
    assert "".join(pieces) == base_answer


def test_setting_the_stop_event_ends_the_stream_early(generator: Generator, base_answer: str) -> None:
    stop = threading.Event()
    pieces = []
    for piece in generator.stream(REFUND_PROMPT, stop):
        pieces.append(piece)
        stop.set()
    assert 1 <= len(pieces) < len(list(generator.stream(REFUND_PROMPT)))
    assert base_answer.startswith("".join(pieces))


def test_an_abandoned_stream_frees_the_generator(generator: Generator, base_answer: str) -> None:
    pieces = generator.stream(REFUND_PROMPT)
    next(pieces)
    pieces.close()  # what a disconnected client's request does; the lock must not stay held
    assert generator.generate(REFUND_PROMPT) == base_answer


def test_the_packaged_model_is_cached_as_safetensors_and_loaded_from_there(
    cache_dir: Path, base_answer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = packaged_cache(SETTINGS.model, cache_dir)
    assert cached.parent == cache_dir
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= {p.name for p in cached.iterdir()}

    gguf_loads: list[object] = []
    real = AutoModelForCausalLM.from_pretrained

    def spy(*args: object, **kwargs: object) -> object:
        if "gguf_file" in kwargs:
            gguf_loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(generation.AutoModelForCausalLM, "from_pretrained", spy)
    again = build_generator(SETTINGS, cache_dir)
    assert gguf_loads == []
    assert again.generate(REFUND_PROMPT) == base_answer


@pytest.fixture(scope="module")
def lora_folders(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {"one": random_lora(cache_dir, root / "one", seed=0), "two.v2": random_lora(cache_dir, root / "two", seed=1)}


@pytest.fixture(scope="module")
def expected(cache_dir: Path, lora_folders: dict[str, Path]) -> dict[str | None, str]:
    """Each adapter's answer from a generator that holds only that adapter."""
    answers = {None: build_generator(SHORT, cache_dir).generate(REFUND_PROMPT)}
    for name, folder in lora_folders.items():
        alone = build_generator(SHORT.with_only_adapter(folder), cache_dir)
        answers[name] = alone.generate(REFUND_PROMPT)
    assert len(set(answers.values())) == 3, answers  # else the checks below could not tell them apart
    return answers


@pytest.fixture(scope="module")
def multi(cache_dir: Path, lora_folders: dict[str, Path]) -> Generator:
    return build_generator(SHORT.model_copy(update={"adapters": lora_folders}), cache_dir)


def test_without_adapters_the_model_is_plain_transformers(generator: Generator) -> None:
    assert type(generator.model).__module__.startswith("transformers.")
    assert generator.adapters == () and generator.model_name == SETTINGS.model


def test_a_lora_adapter_changes_the_answer(cache_dir: Path, base_answer: str, tmp_path: Path) -> None:
    random_lora(cache_dir, tmp_path / "adapter")
    tuned = build_generator(SETTINGS.with_only_adapter(tmp_path / "adapter"), cache_dir)
    assert tuned.generate(REFUND_PROMPT) != base_answer
    assert tuned.model_name.endswith("+adapter")
    assert tuned.adapters == ("adapter",)  # the older single setting: named after its folder, used by default


def test_one_generator_answers_like_each_adapter_alone_in_any_order(
    multi: Generator, expected: dict[str | None, str]
) -> None:
    assert multi.adapters == ("one", "two.v2") and multi.model_name == SETTINGS.model
    for adapter in ["two.v2", None, "one", "two.v2", "one", None]:
        assert multi.generate(REFUND_PROMPT, adapter=adapter) == expected[adapter], adapter
    assert "".join(multi.stream(REFUND_PROMPT, adapter="one")) == expected["one"]


def test_concurrent_requests_each_get_their_own_adapter(multi: Generator, expected: dict[str | None, str]) -> None:
    plans = [["one", None], [None, "two.v2"], ["two.v2", "one"]]

    def run(plan: list[str | None]) -> list[str]:
        return [multi.generate(REFUND_PROMPT, adapter=adapter) for adapter in plan]

    with ThreadPoolExecutor(max_workers=len(plans)) as pool:
        results = list(pool.map(run, plans))
    assert results == [[expected[adapter] for adapter in plan] for plan in plans]


def test_the_default_adapter_answers_requests_that_name_none(
    cache_dir: Path, lora_folders: dict[str, Path], expected: dict[str | None, str]
) -> None:
    settings = SHORT.model_copy(update={"adapters": lora_folders, "default_adapter": "two.v2"})
    tuned = build_generator(settings, cache_dir)
    assert tuned.generate(REFUND_PROMPT) == expected["two.v2"]
    assert tuned.generate(REFUND_PROMPT, adapter="one") == expected["one"]
    assert tuned.model_name.endswith("+two.v2")


def test_an_unknown_adapter_name_is_refused_before_generating(multi: Generator, generator: Generator) -> None:
    with pytest.raises(AdapterNotFound, match="unknown adapter 'three'; the adapters are: one, two.v2"):
        multi.stream(REFUND_PROMPT, adapter="three")  # raised at the call, not at the first piece
    with pytest.raises(AdapterNotFound, match="no adapters are configured"):
        generator.generate(REFUND_PROMPT, adapter="one")
    assert AdapterNotFound.status_code == 404


def test_adapter_configuration_errors_are_reported_before_loading(
    lora_folders: dict[str, Path], tmp_path: Path
) -> None:
    cache = tmp_path / "never-used"  # errors come before the model is even looked for
    with pytest.raises(ModelUnavailable, match="default_adapter 'three' is not one of"):
        build_generator(SETTINGS.model_copy(update={"adapters": lora_folders, "default_adapter": "three"}), cache)
    prompt = tmp_path / "prompt"
    prompt.mkdir()
    (prompt / "adapter_config.json").write_text(json.dumps({"peft_type": "PROMPT_TUNING"}))
    with pytest.raises(ModelUnavailable, match=r"different kinds .* one \(LORA\), tuned \(PROMPT_TUNING\)"):
        build_generator(SETTINGS.model_copy(update={"adapters": {"one": lora_folders["one"], "tuned": prompt}}), cache)
    (prompt / "adapter_config.json").write_text("{not json")
    with pytest.raises(ModelUnavailable, match="adapter 'tuned'.* is not a peft adapter config"):
        build_generator(SETTINGS.model_copy(update={"adapters": {"tuned": prompt}}), cache)
    assert not cache.exists()


def test_a_missing_adapter_is_reported(cache_dir: Path, tmp_path: Path) -> None:
    settings = SETTINGS.with_only_adapter(tmp_path / "nowhere")
    with pytest.raises(ModelUnavailable, match="nowhere"):
        build_generator(settings, cache_dir)
    settings = SETTINGS.model_copy(update={"adapters": {"policies": tmp_path / "missing"}})
    with pytest.raises(ModelUnavailable, match="adapter 'policies': .*missing not found"):
        build_generator(settings, cache_dir)


def test_an_unknown_packaged_model_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="unknown packaged model 'NoSuchModel'"):
        build_generator(GeneratorSettings(backend="transformers", model="packaged:NoSuchModel"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_unloadable_model_path_is_reported(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(ModelUnavailable, match="cannot load generator model"):
        build_generator(GeneratorSettings(backend="transformers", model=str(tmp_path / "broken")), tmp_path)


def test_sentences_are_counted_at_their_ends_not_at_decimals_or_abbreviations() -> None:
    assert count_sentences("It takes 3.5 days, e.g. for refunds [1].") == 1
    assert count_sentences("Yes. It takes 30 days [2]. And") == 2
    assert count_sentences("Still going") == 0


def test_an_ngram_of_the_answer_is_never_generated_twice_but_the_prompt_may_be_copied() -> None:
    blocker = generation._NoRepeatInAnswer(size=3, prompt_length=4)
    # The prompt is 7 8 9 5; the answer so far is 5 6 7 5 6: after "5 6" only 7 is banned (it followed "5 6").
    ids = torch.tensor([[7, 8, 9, 5, 5, 6, 7, 5, 6]])
    scores = blocker(ids, torch.zeros(1, 10))
    assert torch.isinf(scores[0, 7]) and int(torch.isinf(scores).sum()) == 1
    # "9 5" occurs in the prompt and at the answer's end, yet nothing is banned: the prompt is exempt.
    assert not torch.isinf(blocker(torch.tensor([[7, 8, 9, 5, 9, 5]]), torch.zeros(1, 10))).any()


def test_an_answer_is_a_copy_of_the_blocks_until_its_citation() -> None:
    span = CopiedSpan("[1] json\nBy default it ignores all but\n the last  name-value pair.", NO_ANSWER)
    assert span.allows("Ignores all but the last") and span.allows(" ignores all but the last name-value pair.")
    assert not span.allows("Ignored all") and not span.allows("ignores all but the first")
    assert span.allows("Ignores all but [1")  # the citation, and anything after it, is free
    assert not span.allows("Ignores all b [1")  # but only after a whole word
    assert span.allows("The documents do not") and span.allows("")  # so is the refusal
    # The most likely tokens that keep it a copy, in order; none (decoding left free) when no candidate does.
    pieces = {1: "Ignored", 2: "Ign", 3: "ores", 4: "Ignores"}
    assert span.allowed_tokens("", [1, 2, 4], lambda token: pieces[token]) == [2, 4]
    assert span.allowed_tokens("Ign", [3, 1], lambda token: "Ign" + pieces[token]) == [3]
    assert span.allowed_tokens("Ignored", [1], lambda token: "Ignored" + pieces[token]) == []
    # A token of a character's first bytes adds no text: it is not a step of the copy.
    assert span.allowed_tokens("Ign", [5, 3], lambda token: "Ign" + {5: "", 3: "ores"}[token]) == [3]
    # A refusal on its way is left to word itself ("The document does not contain..."), not cut to a copy.
    assert span.allowed_tokens("The document", [1], lambda token: "The document does") == []
    assert span.allowed_tokens("The document does", [1], lambda token: "The document does not") == []


def test_a_sentence_limit_keeps_answers_short(cache_dir: Path) -> None:
    short = build_generator(SETTINGS.model_copy(update={"max_new_tokens": 96, "max_sentences": 1}), cache_dir)
    answer = short.generate(REFUND_PROMPT)
    assert count_sentences(answer) <= 1 and "30" in answer


def test_a_question_that_waits_too_long_for_the_generator_gets_busy(generator: TransformersGenerator) -> None:
    waits = generator.max_wait_seconds
    generator.max_wait_seconds = 0.05
    try:
        with generator._lock, pytest.raises(GeneratorBusy, match="busy with other questions for 0.05 s"):
            generator.generate(REFUND_PROMPT)  # another generation holds the model
    finally:
        generator.max_wait_seconds = waits


JSON_BLOCK = "If the pairs are not ordered, json.loads by default ignores all but the last name-value pair."
JSON_PROMPT = build_prompt(  # the reader, left free, writes "Ignored ..."
    load_template(ROOT / "configs" / "prompt.txt"),
    "By default, how does the json module handle repeated names within a JSON object?",
    [RetrievedChunk(Chunk(1, "doc", "json.html", 0, "json", JSON_BLOCK), 0.8)],
)


def test_the_reader_copies_its_answer_from_the_block(cache_dir: Path) -> None:
    reader = TransformersGenerator(SETTINGS.with_only_adapter(ROOT / "adapters" / "reader"), cache_dir)
    assert reader.generate(JSON_PROMPT) == "Ignores all but the last name-value pair [1]."


def test_a_refusal_the_reader_is_unsure_of_is_ruled_out(cache_dir: Path) -> None:
    # The shipped reader declines this question about another topic, but gives its refusal only about 0.4.
    prompt = MARS_PROMPT
    reader = GeneratorSettings(max_new_tokens=24).with_only_adapter(ROOT / "adapters" / "reader")
    always = TransformersGenerator(reader.model_copy(update={"min_refusal_probability": 0.0}), cache_dir)
    assert always.generate(prompt) == NO_ANSWER
    unsure = TransformersGenerator(reader.model_copy(update={"min_refusal_probability": 0.5}), cache_dir)
    answer = unsure.generate(prompt)
    assert answer and not answer.startswith("The documents"), answer


def test_the_likeliest_of_several_answers_wins_over_the_greedy_one(cache_dir: Path) -> None:
    reader = SETTINGS.with_only_adapter(ROOT / "adapters" / "reader")
    greedy = TransformersGenerator(reader, cache_dir)
    best = TransformersGenerator(reader.model_copy(update={"answer_candidates": 3}), cache_dir)
    assert greedy.generate(GLOB_PROMPT) == "Sorted [1]."
    assert list(best.stream(GLOB_PROMPT)) == ["Arbitrary order [4]."]  # chosen whole, so it streams in one piece

    def logprob(messages: list, answer: str) -> float:
        prompt = best.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        with torch.inference_mode(), best._using(best.default_adapter):
            return best._logprob(prompt, best._start(prompt).cache, answer)

    for messages in (REFUND_PROMPT, JSON_PROMPT, GLOB_PROMPT):
        assert logprob(messages, best.generate(messages)) >= logprob(messages, greedy.generate(messages)), messages
    assert list(best.stream(MARS_PROMPT, refusal_floor_factor=0.001)) == [NO_ANSWER]  # the reader's decision stands
