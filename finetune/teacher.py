"""A teacher behind any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, a hosted API).

It has the generator's `generate`, so `generate_pairs` takes it like a local model: distillation from a
model too large to run here into the small one the service serves."""

from __future__ import annotations

import os

import httpx

from app.prompt import Message

API_KEY_VARIABLE = "OPENAI_API_KEY"  # sent as a bearer token when set


class EndpointTeacher:
    adapters: tuple[str, ...] = ()

    def __init__(self, base_url: str, model: str, *, timeout: float = 120.0) -> None:
        """`base_url` up to the API version, e.g. http://localhost:11434/v1; `model` as the endpoint names it."""
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model_name = model
        key = os.environ.get(API_KEY_VARIABLE)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(timeout=timeout)

    def generate(self, messages: list[Message], adapter: str | None = None) -> str:
        body = {"model": self.model_name, "messages": messages, "temperature": 0.0}
        try:
            response = self.client.post(self.url, json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"teacher endpoint {self.url} could not be reached: {exc}") from exc
        if response.status_code != 200:
            raise RuntimeError(f"teacher endpoint {self.url} answered {response.status_code}: {response.text[:300]}")
        try:
            return str(response.json()["choices"][0]["message"]["content"]).strip()
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RuntimeError(f"teacher endpoint {self.url} sent no chat completion: {response.text[:300]}") from exc
