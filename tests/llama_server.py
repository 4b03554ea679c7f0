"""llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) serving the packaged GGUF, as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from app.packaged import resolve_packaged
from tests.e2e.conftest import free_port, wait_until

BASE_ALIAS = "smollm2"


def packaged_gguf() -> Path:
    folder, name = resolve_packaged("packaged:SmolLM2-135M-Instruct")
    return folder / name


class LlamaServer:
    """`models` maps each served name to a LoRA GGUF applied over the packaged model (None: the base model)."""

    def __init__(self, folder: Path, models: dict[str, Path | None]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = folder / "llama-server.log"
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            "models": [
                {
                    "model": str(packaged_gguf()),
                    "model_alias": alias,
                    "n_ctx": 4096,
                    "n_threads": 2,
                    "verbose": False,
                    **({"lora_path": str(lora)} if lora else {}),
                }
                for alias, lora in models.items()
            ],
        }
        self.config_path = folder / "llama-server.json"
        self.config_path.write_text(json.dumps(config))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--config_file", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, 120, "the llama.cpp server")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"llama.cpp server exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")
        try:
            return httpx.get(f"{self.url}/models", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
