"""Building chat models from registry entries, and keeping secrets out of files.

Provider packages are imported here, when a model is first built, never when the
configuration is loaded, so ``import langchain_runtime.config`` stays light and a
workflow that only uses the simulated provider needs no provider package at all.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langchain_runtime.config.schema import SIMULATED, ModelSpec
from langchain_runtime.errors import ConfigurationError

__all__ = [
    "SimulatedParams",
    "api_key_variable",
    "build_model",
    "check_provider",
    "find_secrets",
    "known_providers",
]

#: Providers with a dedicated integration: (module, class, pip package).
_DIRECT: dict[str, tuple[str, str, str]] = {
    "openai": ("langchain_openai", "ChatOpenAI", "langchain-openai"),
    "anthropic": ("langchain_anthropic", "ChatAnthropic", "langchain-anthropic"),
}
#: The API-key variable each provider's LangChain integration reads.
_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "azure_openai": "AZURE_OPENAI_API_KEY",
    "google_genai": "GOOGLE_API_KEY",
    "mistralai": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "cohere": "COHERE_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "together": "TOGETHER_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "perplexity": "PPLX_API_KEY",
}
# Parameter names that carry credentials. `max_tokens` and `prompt_cache_key` are
# ordinary parameters, so the rules are on whole words, not on substrings.
_SECRET_KEY = re.compile(
    r"^(?:.*_)?(?:api_?key|token|access_key(?:_id)?|private_key|password|passwd|"
    r"credentials?|authorization|auth)$|secret"
)


class SimulatedParams(BaseModel):
    """Parameters the ``simulated`` provider accepts (see ``SimulatedChatModel``)."""

    model_config = ConfigDict(extra="forbid")

    response_tokens: int = Field(default=48, ge=0)
    latency: float = Field(default=0.0, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)


def known_providers() -> frozenset[str]:
    """Every provider name a registry entry may use: ours and LangChain's."""
    names = {SIMULATED, *_DIRECT, *_KEY_VARIABLES}
    try:  # langchain's own list, when it is installed (imported on use only)
        from langchain.chat_models.base import _BUILTIN_PROVIDERS

        names.update(_BUILTIN_PROVIDERS)
    except (ImportError, AttributeError):
        pass
    return frozenset(names)


def check_provider(model_id: str, provider: str) -> None:
    """Refuse a provider no integration knows, suggesting the one probably meant.

    Raises:
        ConfigurationError: ``model 'm': unknown provider 'simulatd'; did you mean
            'simulated'?``
    """
    from langchain_runtime.config._errors import did_you_mean

    known = known_providers()
    if provider in known:
        return
    close = did_you_mean(provider, sorted(known))
    hint = f"; did you mean {close!r}?" if close else f" (known: {', '.join(sorted(known))})"
    raise ConfigurationError(f"model {model_id!r}: unknown provider {provider!r}{hint}")


def api_key_variable(provider: str) -> str:
    """The environment variable that holds ``provider``'s API key, by convention."""
    return _KEY_VARIABLES.get(provider, f"{provider.upper().replace('-', '_')}_API_KEY")


def find_secrets(
    params: Mapping[str, Any], loc: tuple[str | int, ...] = ()
) -> list[tuple[str | int, ...]]:
    """Locations of credential-like keys in ``params``, nested mappings included.

    Example:
        >>> find_secrets({"temperature": 0, "default_headers": {"X-Api-Key": "k"}})
        [('default_headers', 'X-Api-Key')]
        >>> find_secrets({"headers": [{"Authorization": "Bearer x"}]})
        [('headers', 0, 'Authorization')]
    """
    found: list[tuple[str | int, ...]] = []
    for key, value in params.items():
        here = (*loc, str(key))
        if _SECRET_KEY.search(str(key).lower().replace("-", "_")):
            found.append(here)
        elif isinstance(value, Mapping):
            found += find_secrets(value, here)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    found += find_secrets(item, (*here, i))
    return found


def build_model(model_id: str, spec: ModelSpec) -> BaseChatModel:
    """Construct the chat model that registry entry ``model_id`` describes.

    No network call is made: clients are created, not used.

    Raises:
        ConfigurationError: An unknown provider (with the likely one), the
            provider's package is missing (the message gives the
            ``pip install`` line), the API key variable named by ``api_key_env`` is
            unset, or the provider refused the parameters.
    """
    params = spec.params
    check_provider(model_id, spec.provider)
    if spec.provider == SIMULATED:
        from langchain_runtime.testing import SimulatedChatModel

        return _construct(
            model_id, spec, lambda: SimulatedChatModel(model_name=spec.model or SIMULATED, **params)
        )
    name = spec.model or model_id
    if spec.api_key_env is not None:
        key = os.environ.get(spec.api_key_env)
        if not key:
            raise ConfigurationError(
                f"model {model_id!r}: its api_key_env names the environment variable "
                f"{spec.api_key_env}, which is not set"
            )
        params["api_key"] = key
    if spec.provider in _DIRECT:
        module_name, class_name, package = _DIRECT[spec.provider]
        module = _import(module_name, package, model_id, spec.provider)
        cls = getattr(module, class_name)
        return _construct(model_id, spec, lambda: cls(model=name, **params))
    module = _import("langchain.chat_models", "langchain", model_id, spec.provider)
    return _construct(
        model_id,
        spec,
        lambda: module.init_chat_model(name, model_provider=spec.provider, **params),
    )


def _import(module_name: str, package: str, model_id: str, provider: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"model {model_id!r} uses provider {provider!r}, which needs the {package} "
            f"package: pip install {package}"
        ) from exc


def _construct(model_id: str, spec: ModelSpec, make: Callable[[], Any]) -> BaseChatModel:
    try:
        model = make()
    except ImportError as exc:
        # init_chat_model names the missing integration package in its message.
        raise ConfigurationError(
            f"model {model_id!r} (provider {spec.provider!r}) cannot be built: {exc}"
        ) from exc
    except (ValidationError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"model {model_id!r} (provider {spec.provider!r}) cannot be built: {exc}"
        ) from exc
    except Exception as exc:
        # Provider SDKs raise their own error types, most often for a missing key.
        variable = spec.api_key_env or api_key_variable(spec.provider)
        raise ConfigurationError(
            f"model {model_id!r} (provider {spec.provider!r}) cannot be built: {exc} "
            f"(API keys are read from the environment: is {variable} set?)"
        ) from exc
    if not isinstance(model, BaseChatModel):
        raise ConfigurationError(
            f"model {model_id!r} (provider {spec.provider!r}) is a "
            f"{type(model).__name__}, not a chat model"
        )
    return model
