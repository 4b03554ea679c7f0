from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

import app.generation as generation
from app.config import GeneratorSettings, StorageSettings
from app.errors import ModelUnavailable
from app.generation import Generator, load_generator, packaged_cache
from app.prompt import build_prompt, load_template
from app.retrieval import RetrievedChunk
from app.store import Chunk

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = GeneratorSettings(max_new_tokens=48)
REFUND_POLICY = "Refunds are accepted within 30 days of purchase."
# The service's own template, so the test answers the prompt users' questions get.
REFUND_PROMPT = build_prompt(
    load_template(ROOT / "configs" / "prompt.txt"),
    "How many days do customers have to request a refund?",
    [RetrievedChunk(Chunk(1, "doc", "policy.md", 0, "Refund policy", REFUND_POLICY), 0.9)],
)


@pytest.fixture(scope="module")
def cache_dir() -> Path:
    # The service's own default cache: only the first run ever pays the ~20 s de-quantization.
    return ROOT / StorageSettings().model_cache_dir


@pytest.fixture(scope="module")
def generator(cache_dir: Path) -> Generator:
    return load_generator(SETTINGS, cache_dir)


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
    again = load_generator(SETTINGS, cache_dir)
    assert gguf_loads == []
    assert again.generate(REFUND_PROMPT) == base_answer


def test_a_lora_adapter_changes_the_answer(cache_dir: Path, base_answer: str, tmp_path: Path) -> None:
    base = AutoModelForCausalLM.from_pretrained(packaged_cache(SETTINGS.model, cache_dir))
    lora = get_peft_model(base, LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:  # peft starts B at zero, which would leave the model unchanged
                param.normal_(std=0.5)
    lora.save_pretrained(tmp_path / "adapter")

    tuned = load_generator(SETTINGS.model_copy(update={"adapter_path": tmp_path / "adapter"}), cache_dir)
    assert tuned.generate(REFUND_PROMPT) != base_answer
    assert tuned.model_name.endswith("+adapter")


def test_a_missing_adapter_is_reported(cache_dir: Path, tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(update={"adapter_path": tmp_path / "nowhere"})
    with pytest.raises(ModelUnavailable, match="nowhere"):
        load_generator(settings, cache_dir)


def test_an_unknown_packaged_model_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="unknown packaged model 'NoSuchModel'"):
        load_generator(GeneratorSettings(model="packaged:NoSuchModel"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_unloadable_model_path_is_reported(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(ModelUnavailable, match="cannot load generator model"):
        load_generator(GeneratorSettings(model=str(tmp_path / "broken")), tmp_path)
