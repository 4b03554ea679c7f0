"""Generators behind one small Protocol, chosen by `generator.backend` in `build_generator`."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.config import GeneratorSettings
from app.errors import AdapterNotFound, GeneratorBusy, ModelUnavailable
from app.prompt import Message, is_refusal

log = logging.getLogger(__name__)

# Written by fine-tuning beside adapter_config.json (base model, data hash, parameters, metrics).
ADAPTER_CARD = "adapter_card.json"

# A sentence ends with . ! or ? (and an optional citation) before a break; "3.5" or "e.g. x" do not end one.
SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)[.!?](?:\s*\[\d+\])?(?=\s|$)")


class TextGenerator(Protocol):
    """What asks only for whole answers needs (fine-tuning's teacher and its evaluation)."""

    def generate(self, messages: list[Message], adapter: str | None = None) -> str:
        """Run chat messages through the chat template; return only the new text, stripped.

        `adapter` names one of the generator's adapters; None is its default (the base model if none)."""
        ...


class Generator(TextGenerator, Protocol):
    @property
    def model_name(self) -> str: ...

    @property
    def adapters(self) -> Sequence[str]:
        """The names a request may pass as `adapter`."""
        ...

    def stream(
        self,
        messages: list[Message],
        stop: threading.Event | None = None,
        adapter: str | None = None,
        refusal_floor_factor: float = 1.0,
    ) -> Iterator[str]:
        """The same text as `generate`, in pieces as they are generated; setting `stop` ends it early.
        `refusal_floor_factor` multiplies generator.min_refusal_probability for this question (backends that
        read the refusal's probability; the others ignore it)."""
        ...

    def unavailable(self) -> str | None:
        """Why the generator cannot answer right now (its server is down), or None; GET /ready reports it."""
        ...


def build_generator(settings: GeneratorSettings, cache_dir: Path) -> Generator:
    """The generator `settings.backend` names; each backend's imports are paid only when it is chosen."""
    match settings.backend:
        case "transformers":
            from app.generation.transformers_backend import TransformersGenerator

            return TransformersGenerator(settings, cache_dir)
        case "llama-cpp":
            from app.generation.llama_cpp_backend import LlamaCppGenerator

            return LlamaCppGenerator(settings, cache_dir)
        case "openai":
            from app.generation.openai_backend import OpenAIGenerator

            return OpenAIGenerator(settings)
        case "fake":
            from app.generation.fake import FakeGenerator

            return FakeGenerator(settings)


def checked_default_adapter(settings: GeneratorSettings) -> str | None:
    """generator.default_adapter, which must be one of generator.adapters: checked before any model loads."""
    default = settings.default_adapter
    if default is not None and default not in settings.adapters:
        raise ModelUnavailable(f"generator.default_adapter {default!r} is not one of generator.adapters")
    return default


def served_model_name(settings: GeneratorSettings) -> str:
    """What /ready and the OpenAI API call the generator: the model, and the default adapter if any."""
    return settings.model + (f"+{settings.default_adapter}" if settings.default_adapter else "")


def wait_for_turn(lock: threading.Lock, seconds: float) -> None:
    """Take `lock` (one generation at a time), or give up after `seconds` with GeneratorBusy: a burst of
    questions gets 503s instead of piling up without end."""
    if not lock.acquire(timeout=seconds):
        raise GeneratorBusy(f"the generator stayed busy with other questions for {seconds:g} s; retry later")


def repeating_tokens(answer: list[int], size: int) -> list[int]:
    """The tokens that would complete, a second time, an n-gram (n = `size`) the answer already holds."""
    if len(answer) < size:
        return []
    prefix = answer[len(answer) - size + 1 :]
    return [answer[i + size - 1] for i in range(len(answer) - size + 1) if answer[i : i + size - 1] == prefix]


def stripped(pieces: Iterator[str]) -> Iterator[str]:
    """The pieces without leading and trailing whitespace overall, so that they join to the stripped text."""
    held = ""  # whitespace that is only yielded once more text follows it
    started = False
    for piece in pieces:
        text = held + piece if started else piece.lstrip()
        body = text.rstrip()
        held = text[len(body) :]
        if body:
            started = True
            yield body


def likeliest_answer(
    greedy: str,
    stopped: bool,
    first: Callable[[int], float],
    first_tokens: Sequence[int],
    count: int,
    begun_with: Callable[[int], str],
    logprob: Callable[[str], float],
) -> str:
    """generator.answer_candidates: the greedy answer, or the answer begun by one of the next likeliest first
    tokens when the model gives that whole answer a higher probability. Greedy decoding commits to its first
    token, which is where a small reader most often takes the wrong span of a block that holds the right one.
    A refusal is the reader's own decision (the refusal floor) and a `stopped` answer the caller's: both stand.

    `first(token)` is the log-probability of `token` as the answer's first token; `first_tokens` are those to
    try, likeliest first (runner_up_first_tokens); `begun_with(token)` completes the answer begun by `token`
    under the same rules with the refusal banned, and `logprob(answer)` is log P(answer | prompt). An answer's
    log-probability is at most its first token's, so a first token less likely than the best answer so far
    cannot begin a likelier one: most questions need no second answer."""
    if is_refusal(greedy) or stopped:
        return greedy
    best, best_logprob = greedy, logprob(greedy)
    for token in first_tokens[: count - 1]:
        if first(token) <= best_logprob:
            break
        answer = begun_with(token)
        answer_logprob = logprob(answer)
        if answer_logprob > best_logprob:
            best, best_logprob = answer, answer_logprob
    return best


def runner_up_first_tokens(
    ranked: Sequence[int],
    span: CopiedSpan | None,
    text: Callable[[list[int]], str],
    greedy_ids: Sequence[int],
    refusal_ids: Sequence[int],
) -> list[int]:
    """The first tokens likeliest_answer tries: those of `ranked` (the likeliest, best first) that the copy rule
    allows, without the greedy answer's own and the refusal's, which is as likely as the refusal: it would begin
    a forced non-refusal."""
    allowed = ranked if span is None else span.allowed_tokens("", ranked, lambda token: text([token]))
    taken = {*greedy_ids[:1], refusal_ids[0]}
    return [token for token in allowed if token not in taken]


def chosen_adapter(name: str | None, known: Sequence[str], default: str | None) -> str | None:
    """The adapter a request gets: the one it names (which must be known), else the default."""
    check_adapter(name, known)
    return default if name is None else name


def check_adapter(name: str | None, known: Sequence[str]) -> None:
    if name is not None and name not in known:
        known_ones = f"the adapters are: {', '.join(known)}" if known else "no adapters are configured"
        raise AdapterNotFound(f"unknown adapter {name!r}; {known_ones} (GET /adapters)")


class CopiedSpan:
    """An answer whose text before its first citation is a span of the source (the prompt's blocks; case and
    spacing aside) or the start of the refusal sentence: what the reader is trained to write, held to while it
    decodes (generator.copy_spans), so that "ignores all but the last" is not written "Ignored all but the last"."""

    CANDIDATES = 8  # the most likely next tokens tried, in order, at each step

    def __init__(self, source: str, refusal: str) -> None:
        self.source = _folded(source)
        self.refusal = refusal

    def allows(self, answer: str) -> bool:
        """Whether `answer` is a copy so far; a citation may follow only a whole word ("Leav [1]" is no copy)."""
        head, citation, _ = answer.lstrip().partition("[")
        if self.refusal.startswith(head):
            return True
        return self._ends_a_word(head) if citation else _folded(head) in self.source

    def allowed_tokens(self, answer: str, ranked: Sequence[int], extended: Callable[[int], str]) -> list[int]:
        """The tokens of `ranked` (most likely first) whose `extended` answer is still a copy; none (decoding is
        then left free) when none of them is, and from then on: once a citation has begun, or once the answer is
        no copy (on its way to a refusal, "The document", which the reader may word its own way)."""
        head = answer.lstrip()
        if "[" in head or _folded(head) not in self.source:
            return []

        def copies(token: int) -> bool:  # a token of a character's first bytes adds no text, and copies nothing
            text = extended(token)
            return len(text) > len(answer) and self.allows(text)

        return [token for token in ranked if copies(token)]

    def _ends_a_word(self, head: str) -> bool:
        return re.search(re.escape(_folded(head).rstrip()) + r"(?!\w)", self.source) is not None


def _folded(text: str) -> str:
    return " ".join(text.lower().split()) + (" " if text[-1:].isspace() else "")


def count_sentences(text: str) -> int:
    return len(SENTENCE_END.findall(text.strip()))


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: Path
    card: dict[str, Any] | None  # ADAPTER_CARD, when the folder has a readable one
    default: bool
    served_as: str | None  # the model name a generator server is asked for (backend openai); None in-process


def describe_adapters(settings: GeneratorSettings) -> list[AdapterInfo]:
    """The configured adapters with their cards; reads only the card files, so it works while models load."""
    default = settings.default_adapter
    served = settings.backend == "openai"  # a server serves each adapter under its name
    return [
        AdapterInfo(name, path, _read_card(path / ADAPTER_CARD), name == default, name if served else None)
        for name, path in settings.adapters.items()
    ]


def _read_card(path: Path) -> dict[str, Any] | None:
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("adapter card %s is unreadable: %s", path, exc)
        return None
    return card if isinstance(card, dict) else None
