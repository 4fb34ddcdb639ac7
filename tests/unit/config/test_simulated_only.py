"""Options only the simulated provider understands are refused for a real one."""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_runtime.config import load_config
from langchain_runtime.errors import ConfigurationError


def test_the_loader_names_the_field_and_the_provider(tmp_path: Path) -> None:
    path = tmp_path / "real.yaml"
    path.write_text(
        "models:\n  claude:\n    provider: anthropic\n    response_tokens: 40\n"
        "model: claude\ntasks:\n  - id: a\n    prompt: hi\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)
    assert (
        "models.claude.response_tokens: only the simulated provider understands "
        "'response_tokens'; provider 'anthropic'" in str(caught.value)
    )
    assert ":4:" in str(caught.value)


def test_the_simulated_provider_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text(
        "models:\n  fake: {provider: simulated, response_tokens: 40, latency: 0.1}\n"
        "model: fake\ntasks:\n  - id: a\n    prompt: hi\n",
        encoding="utf-8",
    )
    assert load_config(path).models["fake"].params == {"response_tokens": 40, "latency": 0.1}
