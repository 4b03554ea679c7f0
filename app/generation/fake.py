"""A generator without a model, for tests and for working on the API: deterministic and instant.

It reads its prompt as a small model is asked to: the numbered context blocks and the question. It answers
with the block sentence that shares the most words with the question, citing its block, and gives the
refusal sentence when no sentence holds at least a third of the question's words. A test may script the
reply instead (`reply`)."""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterator

from app.config import GeneratorSettings
from app.generation import chosen_adapter
from app.lexical import coverage
from app.prompt import NO_ANSWER, Message
from app.quotes import best_quotes

BLOCK = re.compile(r"^\[(\d+)\] [^\n]*\n(.*?)(?=^\[\d+\] |\Z)", re.MULTILINE | re.DOTALL)
QUESTION = re.compile(r"^Question:\s*(.+)$", re.MULTILINE)
MIN_QUESTION_SHARE = 0.35

Reply = Callable[[list[Message], str | None], str]  # (messages, adapter) -> the answer


class FakeGenerator:
    def __init__(self, settings: GeneratorSettings | None = None, reply: Reply | None = None) -> None:
        settings = settings or GeneratorSettings(backend="fake")
        self.adapters = tuple(settings.adapters)
        self.default_adapter = settings.default_adapter
        self.model_name = "fake" + (f"+{self.default_adapter}" if self.default_adapter else "")
        self.reply = reply or extract_answer
        # What it was last asked (prompt, adapter), for tests to read; bounded for a long `make run` with the fake.
        self.calls: deque[tuple[list[Message], str | None]] = deque(maxlen=100)

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
        self.calls.append((messages, adapter))
        return _pieces(self.reply(messages, adapter), stop)

    def unavailable(self) -> str | None:
        return None


def extract_answer(messages: list[Message], adapter: str | None = None) -> str:
    """The block sentence with the most of the question's words, cited; the refusal when it has too few."""
    prompt = messages[-1]["content"]
    asked = list(QUESTION.finditer(prompt))
    if asked:
        question, prompt = asked[-1].group(1), prompt[: asked[-1].start()]
    else:
        question = prompt.strip().splitlines()[-1]
    blocks = {int(number): text.strip() for number, text in BLOCK.findall(prompt)}
    if not blocks:
        return NO_ANSWER
    ordered = [blocks.get(n, "") for n in range(1, max(blocks) + 1)]
    quotes = best_quotes(question, "", ordered, sorted(blocks))
    best = max(quotes.values(), key=lambda quote: quote.score, default=None)
    if best is None or coverage(question, [best.text]) < MIN_QUESTION_SHARE:
        return NO_ANSWER
    return f"{best.text} [{best.block}]"


def _pieces(text: str, stop: threading.Event | None) -> Iterator[str]:
    """Word by word, as a model streams tokens; stops early once `stop` is set."""
    for piece in re.findall(r"\S+\s*", text.strip()):  # they join to the stripped text, as `generate` returns
        if stop is not None and stop.is_set():
            return
        yield piece
