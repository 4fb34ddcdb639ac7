"""Building provider models from the registry: offline, lazily, keys from the environment."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from langchain_runtime import ConfigurationError
from langchain_runtime.config import load_config
from langchain_runtime.testing import SimulatedChatModel


def _config(**model: Any) -> Any:
    """A configuration whose `uses_m` workflow uses registry model `m`; `offline` does not."""
    return load_config(
        {
            "models": {"m": model, "sim": {"provider": "simulated"}},
            "workflows": {
                "uses_m": {"model": "m", "tasks": [{"id": "a", "prompt": "{topic}"}]},
                "offline": {"model": "sim", "tasks": [{"id": "a", "prompt": "{topic}"}]},
            },
        }
    )


def test_openai_model_is_built_with_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from langchain_openai import ChatOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    config = _config(
        provider="openai",
        model="gpt-4o-mini",
        temperature=0,
        max_tokens=64,
        base_url="http://127.0.0.1:9/v1",
    )
    model = config.model("m")

    assert isinstance(model, ChatOpenAI)
    assert model.model_name == "gpt-4o-mini"
    assert model.temperature == 0
    assert model.max_tokens == 64
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert isinstance(model.openai_api_key, SecretStr)
    assert model.openai_api_key.get_secret_value() == "sk-from-env"
    # A workflow over it builds without any network call.
    orch = config.build_workflow("uses_m")
    assert orch.graph["a"].model is model


def test_model_name_defaults_to_the_registry_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = load_config({"models": {"gpt-4o-mini": {"provider": "openai"}}})
    assert getattr(config.model("gpt-4o-mini"), "model_name", None) == "gpt-4o-mini"


def test_api_key_env_names_another_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_KEY", "gw-key")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = _config(
        provider="openai",
        model="llama",
        base_url="http://127.0.0.1:9/v1",
        api_key_env="GATEWAY_KEY",
    )
    key = getattr(config.model("m"), "openai_api_key", None)
    assert key is not None and key.get_secret_value() == "gw-key"


def test_api_key_env_that_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_KEY", raising=False)
    config = _config(provider="openai", model="llama", api_key_env="GATEWAY_KEY")
    with pytest.raises(
        ConfigurationError, match="names the environment variable GATEWAY_KEY, which is not set"
    ):
        config.model("m")


def test_missing_openai_key_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    config = _config(provider="openai", model="gpt-4o-mini")
    with pytest.raises(ConfigurationError) as info:
        config.build_workflow("uses_m")
    message = str(info.value)
    assert message.startswith("<config>: models.m: model 'm' (provider 'openai') cannot be built")
    assert "is OPENAI_API_KEY set?" in message


@pytest.mark.parametrize(
    ("provider", "module", "package"),
    [
        ("openai", "langchain_openai", "langchain-openai"),
        ("anthropic", "langchain_anthropic", "langchain-anthropic"),
        ("mistralai", "langchain.chat_models", "langchain"),
    ],
)
def test_missing_provider_package_names_the_pip_package(
    monkeypatch: pytest.MonkeyPatch, provider: str, module: str, package: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    config = _config(provider=provider, model="some-model")

    # Loading and building workflows that do not use the model need no package.
    assert config.build_workflow("offline").invoke({"topic": "t"}).ok
    with pytest.raises(ConfigurationError) as info:
        config.build_workflow("uses_m")
    assert str(info.value) == (
        f"<config>: models.m: model 'm' uses provider {provider!r}, which needs the "
        f"{package} package: pip install {package}"
    )


def test_other_providers_go_through_init_chat_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_openai import AzureChatOpenAI

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-key")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    config = _config(
        provider="azure_openai", model="gpt-4o", azure_deployment="gpt4o", temperature=0
    )
    model = config.model("m")
    assert isinstance(model, AzureChatOpenAI)
    assert model.deployment_name == "gpt4o"


def test_init_chat_model_integration_package_missing() -> None:
    # langchain-mistralai is not installed in the test environment.
    config = _config(provider="mistralai", model="mistral-large-latest")
    with pytest.raises(ConfigurationError, match="pip install langchain-mistralai"):
        config.model("m")


def test_unknown_provider() -> None:
    config = _config(provider="zzqq", model="x")
    with pytest.raises(ConfigurationError, match="model 'm': unknown provider 'zzqq' \\(known: "):
        config.model("m")
    typo = _config(provider="simulatd", model="x")
    with pytest.raises(
        ConfigurationError, match="unknown provider 'simulatd'; did you mean 'simulated'"
    ):
        typo.model("m")


def test_provider_refusing_a_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = _config(provider="openai", model="gpt-4o-mini", temperature="hot")
    with pytest.raises(ConfigurationError, match=r"models\.m: model 'm' .* cannot be built"):
        config.model("m")


def test_simulated_model_parameters() -> None:
    config = load_config(
        {
            "models": {
                "a": {
                    "provider": "simulated",
                    "model": "my-sim",
                    "response_tokens": 3,
                    "latency": 0,
                },
            }
        }
    )
    model = config.model("a")
    assert isinstance(model, SimulatedChatModel)
    assert (model.model_name, model.response_tokens) == ("my-sim", 3)
    assert isinstance(model, BaseChatModel)
