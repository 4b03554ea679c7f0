"""A few real training steps of SmolLM2 on CPU: the loss falls, checkpoints resume, the adapter loads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from app.config import GeneratorSettings, StorageSettings
from app.generation import ADAPTER_CARD
from app.generation.transformers_backend import TransformersGenerator, packaged_cache
from app.prompt import build_prompt, load_template
from app.retrieval import RetrievedChunk
from app.store import Chunk
from finetune.records import Example
from finetune.train import IGNORE, STATE_FILE, TrainConfig, answer_loss, examples_sha256, tokenize, train

ROOT = Path(__file__).resolve().parents[3]
CACHE = ROOT / StorageSettings().model_cache_dir  # the service's own cache: loads in about a second
SETTINGS = GeneratorSettings(device="cpu", max_new_tokens=8)
TEMPLATE = load_template(ROOT / "configs" / "prompt.txt")
FACTS = [  # (section, text, question, answer)
    ("Refunds", "Refunds are accepted within 30 days of purchase.", "When can I get a refund?", "Within 30 days"),
    ("Passwords", "Passwords need at least 14 characters.", "How long must passwords be?", "At least 14 characters"),
    ("Leave", "New parents receive 16 weeks of paid leave.", "How long is parental leave?", "16 weeks"),
    ("Suppliers", "New suppliers register with form PRC-7.", "Which form registers a supplier?", "Form PRC-7"),
]


def example(i: int, distractor_text: str | None = None) -> Example:
    section, text, question, answer = FACTS[i]
    other = FACTS[(i + 1) % len(FACTS)]
    chunks = [
        RetrievedChunk(Chunk(2 * i + 1, "d2", "other.md", 0, other[0], distractor_text or other[1]), 0.0),
        RetrievedChunk(Chunk(2 * i, "d1", "policy.md", 0, section, text), 0.0),
    ]
    return Example(f"e{i}", build_prompt(TEMPLATE, question, chunks), f"{answer} [2].", "oracle", [2])


EXAMPLES = [example(i) for i in range(len(FACTS))]
TOO_LONG = example(0, "A very long distractor. " * 80)


def config(output: Path, **changes: object) -> TrainConfig:
    tiny = {"batch_size": 2, "max_length": 256, "lr": 3e-3, "dropout": 0.0, "save_every": 1, "output": output}
    return TrainConfig(**{**tiny, **changes})


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # On a shared 2-core machine two torch threads wait on each other: one thread was 2-8x faster here.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Two steps, then --resume up to three: (adapter folder, first result, resumed result)."""
    output = tmp_path_factory.mktemp("adapter")
    data = [*EXAMPLES, TOO_LONG]
    first = train(SETTINGS, CACHE, data, config(output, steps=2))
    resumed = train(SETTINGS, CACHE, data, config(output, steps=3, eval_every=2), resume=True, held_out=EXAMPLES[:2])
    return output, first, resumed


def test_only_the_answer_tokens_are_learnt() -> None:
    tokenizer = AutoTokenizer.from_pretrained(packaged_cache(SETTINGS.model, CACHE))
    ids, labels = tokenize(tokenizer, EXAMPLES[0])
    learnt = [token for token, label in zip(ids, labels, strict=True) if label != IGNORE]
    assert tokenizer.decode(learnt).strip() == "Within 30 days [2].<|im_end|>"
    assert labels[: len(ids) - len(learnt)] == [IGNORE] * (len(ids) - len(learnt))  # the whole prompt is masked


def test_resume_continues_the_step_count_from_the_last_checkpoint(trained: tuple[Path, dict, dict]) -> None:
    output, first, resumed = trained
    assert (first["start_step"], first["steps"]) == (0, 2)
    assert (resumed["start_step"], resumed["steps"]) == (2, 3)
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["step-1", "step-2", "step-3"]
    state = torch.load(output / "checkpoints" / "step-3" / STATE_FILE, weights_only=True)
    assert state["step"] == 3
    # AdamW counted the two earlier steps too: its state was restored, not started afresh.
    assert {float(s["step"]) for s in state["optimizer"]["state"].values()} == {3.0}


def test_the_adapter_is_saved_with_its_card(trained: tuple[Path, dict, dict]) -> None:
    output, _, resumed = trained
    assert (output / "adapter_config.json").is_file() and (output / "adapter_model.safetensors").is_file()
    card = json.loads((output / ADAPTER_CARD).read_text())
    assert card["base_model"] == SETTINGS.model and card["method"] == "lora"
    assert card["data_sha256"] == examples_sha256([*EXAMPLES, TOO_LONG])
    assert card["parameters"]["r"] == 8 and card["parameters"]["target_modules"] == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
    ]
    assert card["steps"] == 3 and card["final_loss"] == resumed["last_loss"]
    assert resumed["examples"] == 4 and resumed["skipped_too_long"] == 1  # longer than max_length: left out


def test_held_out_loss_is_tracked_every_eval_every_steps_and_at_the_end(trained: tuple[Path, dict, dict]) -> None:
    output, first, resumed = trained
    assert first["held_out_loss"] == [] and first["best_held_out_step"] is None  # no held-out examples given
    curve = resumed["held_out_loss"]
    assert [point["step"] for point in curve] == [3]  # the resumed run covers step 3 only: the end
    assert 0 < curve[0]["loss"] < 20 and resumed["best_held_out_step"] == 3
    assert json.loads((output / ADAPTER_CARD).read_text())["held_out_loss"] == curve


def test_training_lowers_the_loss_on_the_training_examples(trained: tuple[Path, dict, dict]) -> None:
    output, _, _ = trained
    base = TransformersGenerator(SETTINGS, CACHE)
    before = answer_loss(base.model, base.tokenizer, EXAMPLES)
    adapted = TransformersGenerator(SETTINGS.with_only_adapter(output), CACHE)
    after = answer_loss(adapted.model, adapted.tokenizer, EXAMPLES)
    assert after < 0.8 * before, (before, after)


def test_resuming_on_other_examples_is_refused(trained: tuple[Path, dict, dict]) -> None:
    output, _, _ = trained
    with pytest.raises(ValueError, match="other examples"):
        train(SETTINGS, CACHE, EXAMPLES[:2], config(output, steps=4), resume=True)


def test_prompt_tuning_trains_an_adapter_that_the_generator_loads(
    trained: tuple[Path, dict, dict], tmp_path: Path
) -> None:
    serving = SETTINGS.with_only_adapter(trained[0])  # training starts from the base regardless
    result = train(serving, CACHE, EXAMPLES, config(tmp_path, method="prompt-tuning", num_virtual_tokens=4, steps=1))
    assert result["trainable_parameters"] == 4 * 576  # four virtual tokens of SmolLM2-135M's width
    assert json.loads((tmp_path / "adapter_config.json").read_text())["peft_type"] == "PROMPT_TUNING"
    generator = TransformersGenerator(SETTINGS.with_only_adapter(tmp_path), CACHE)
    assert generator.generate(EXAMPLES[0].messages)
    # The refusal floor's pass leaves the prompt's cache to the generation; the virtual tokens must not shift it.
    greedy = SETTINGS.with_only_adapter(tmp_path).model_copy(update={"answer_candidates": 1})
    no_floor = TransformersGenerator(greedy.model_copy(update={"min_refusal_probability": 0.0}), CACHE)
    tiny_floor = TransformersGenerator(greedy.model_copy(update={"min_refusal_probability": 1e-12}), CACHE)
    assert tiny_floor.generate(EXAMPLES[0].messages) == no_floor.generate(EXAMPLES[0].messages)
