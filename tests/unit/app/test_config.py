"""Settings: which YAML file, how its paths resolve, what variables override, and that nothing mutates them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import DEFAULT_CONFIG, Settings

REPO = DEFAULT_CONFIG.parent.parent


def test_the_default_file_resolves_its_paths_against_its_own_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")  # the working directory does not matter
    settings = Settings()
    assert settings.storage.data_dir == REPO / "data"
    assert settings.generator.prompt_template == REPO / "configs" / "prompt.txt"
    assert settings.generator.adapters == {"reader": REPO / "adapters" / "reader"}
    assert settings.generator.prompt_template.is_file()


def test_rag_config_picks_another_file_and_variables_override_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "team" / "rag.yaml"
    config.parent.mkdir()
    config.write_text("storage:\n  data_dir: store\nretrieval:\n  top_k: 6\ngenerator:\n  adapters: {}\n")
    monkeypatch.setenv("RAG_CONFIG", str(config))
    monkeypatch.setenv("RAG_RETRIEVAL__TOP_K", "8")
    monkeypatch.setenv("RAG_SERVER__PORT", "9000")
    monkeypatch.setenv("RAG_GENERATOR__DEFAULT_ADAPTER", "")
    settings = Settings()
    assert settings.storage.data_dir == tmp_path / "team" / "store"
    assert (settings.retrieval.top_k, settings.server.port) == (8, 9000)
    assert settings.generator.default_adapter is None and settings.generator.adapters == {}


def test_a_missing_settings_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(FileNotFoundError, match="RAG_CONFIG=.*nope.yaml: no such settings file"):
        Settings()


def test_settings_are_frozen_and_varied_by_copy(tmp_path: Path) -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.retrieval.top_k = 9
    moved = settings.with_data_dir(tmp_path)
    assert moved.storage.data_dir == tmp_path and settings.storage.data_dir != tmp_path
    assert moved.storage.database_path == tmp_path / "rag.sqlite3"


def test_one_adapter_alone_is_named_after_its_folder(tmp_path: Path) -> None:
    alone = Settings().generator.with_only_adapter(tmp_path / "policies")
    assert (alone.adapters, alone.default_adapter) == ({"policies": tmp_path / "policies"}, "policies")
    base = Settings().generator.with_only_adapter(None)
    assert (base.adapters, base.default_adapter) == ({}, None)
