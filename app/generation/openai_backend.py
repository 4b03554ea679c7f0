"""The OpenAI-compatible backend: a chat-completions server holds the model (vLLM, llama.cpp's server, Ollama,
TGI), reached through the `openai` client. An adapter is asked for as the model of its own name, which is how
these servers serve adapters (vLLM `--lora-modules reader=...`, llama-cpp-python `model_alias: reader`)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionMessageParam

from app.config import GeneratorSettings
from app.errors import GeneratorUnavailable, ModelUnavailable
from app.generation import checked_default_adapter, chosen_adapter, count_sentences, served_model_name, stripped
from app.prompt import Message

log = logging.getLogger(__name__)

# /ready asks the server for its models: a short wait, no retries, so readiness answers fast when it is down.
READY_TIMEOUT_SECONDS = 3.0


class OpenAIGenerator:
    def __init__(self, settings: GeneratorSettings) -> None:
        if not settings.base_url:
            raise ModelUnavailable(
                "generator.backend is 'openai' but generator.base_url is not set "
                "(e.g. RAG_GENERATOR__BASE_URL=http://127.0.0.1:8080/v1)"
            )
        self.base_url = settings.base_url
        self.adapters = tuple(settings.adapters)
        self.default_adapter = checked_default_adapter(settings)
        self.model = settings.model
        self.model_name = served_model_name(settings)
        self.max_sentences = settings.max_sentences
        self.client = openai.OpenAI(
            base_url=settings.base_url,
            # Servers without keys (llama.cpp, Ollama, vLLM by default) take any; the client insists on one.
            api_key=os.environ.get(settings.api_key_env) or "none",
            timeout=settings.timeout_seconds,
            max_retries=settings.max_retries,
        )
        self.options: dict[str, Any] = {
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
        }
        # Not in OpenAI's API: vLLM, TGI and llama.cpp read them from the body; a server may ignore them.
        extra: dict[str, float] = {"top_k": settings.top_k} if settings.top_k else {}
        if settings.repetition_penalty != 1.0:
            extra["repetition_penalty"] = settings.repetition_penalty
        if extra:
            self.options["extra_body"] = extra
        log.info("generator %s at %s", self.model_name, self.base_url)

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
        return stripped(self._stream(messages, stop, adapter or self.model))

    def unavailable(self) -> str | None:
        try:
            self.client.with_options(timeout=READY_TIMEOUT_SECONDS, max_retries=0).models.list()
        except openai.OpenAIError as exc:
            return self._describe(exc)
        return None

    def _stream(self, messages: list[Message], stop: threading.Event | None, model: str) -> Iterator[str]:
        try:
            response = self.client.chat.completions.create(
                model=model, messages=cast(list[ChatCompletionMessageParam], messages), stream=True, **self.options
            )
            # Closing the response closes the connection, which is how a server learns to stop generating.
            with response:
                text = ""
                for chunk in response:
                    if stop is not None and stop.is_set():
                        return
                    piece = chunk.choices[0].delta.content if chunk.choices else None
                    if not piece:
                        continue
                    yield piece
                    text += piece
                    if self.max_sentences and count_sentences(text) >= self.max_sentences:
                        return  # a short answer, and no room for a loop, as in-process
        except openai.OpenAIError as exc:
            raise GeneratorUnavailable(self._describe(exc)) from exc

    def _describe(self, exc: openai.OpenAIError) -> str:
        """The failure as a sentence that says what to check."""
        where = f"the generator server at {self.base_url}"
        if isinstance(exc, openai.APITimeoutError):
            return f"{where} did not answer in time; check its load, or raise generator.timeout_seconds"
        if isinstance(exc, openai.APIConnectionError):
            return f"cannot reach {where}; start it, or fix generator.base_url"
        if isinstance(exc, openai.AuthenticationError):
            return f"{where} refused the API key; set it in the environment variable generator.api_key_env names"
        if isinstance(exc, openai.NotFoundError):
            return f"{where} answered 404 ({exc.message}); check generator.model and the adapter names it serves"
        if isinstance(exc, openai.APIStatusError):
            return f"{where} answered {exc.status_code}: {exc.message}"
        return f"{where} failed: {exc}"
