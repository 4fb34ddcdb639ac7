"""LangChain's own standard test suites, run on the test models and the run memory.

``langchain-tests`` checks what any LangChain chat model or ``BaseStore`` must do.
Cases that do not apply are turned off through the suite's own properties
(``has_tool_calling`` and friends), each with the reason next to it; the few that
have no such property are skipped by name, with the reason, in ``INAPPLICABLE``.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain_tests", reason="langchain-tests is in the 'test' extra")

from langchain_core.language_models import BaseChatModel
from langchain_core.stores import BaseStore
from langchain_tests.integration_tests import (
    BaseStoreAsyncTests,
    BaseStoreSyncTests,
    ChatModelIntegrationTests,
)
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_runtime.context.memory import MemoryManager, StagedMemory
from langchain_runtime.testing import ScriptedChatModel, SimulatedChatModel

pytestmark = pytest.mark.anyio

#: Suite cases with no property to turn them off, and why they do not apply.
INAPPLICABLE: dict[str, str] = {
    "test_init_time": (
        "a timing benchmark; speed targets live in tests/benchmarks, never in the unit run"
    ),
    "test_stream_time": (
        "a timing benchmark over a recorded HTTP cassette; the test models make no HTTP call"
    ),
}


def _skip_inapplicable(request: pytest.FixtureRequest) -> None:
    reason = INAPPLICABLE.get(request.node.originalname)
    if reason is not None:
        pytest.skip(reason)


class _ModelSuite:
    """What both test models do and do not do, for both suites."""

    @pytest.fixture(autouse=True)
    def _inapplicable(self, request: pytest.FixtureRequest) -> None:
        _skip_inapplicable(request)

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # the unit suite adds api_key="test"; offline models take no key (and refuse
        # unknown parameters), every other standard parameter is kept
        params: dict[str, Any] = super().standard_chat_model_params  # type: ignore[misc]
        params.pop("api_key", None)
        return params

    @property
    def has_tool_calling(self) -> bool:
        # the scripted model accepts tools but its script, not the prompt, picks the
        # calls; the simulated model never calls tools
        return False

    @property
    def has_structured_output(self) -> bool:
        # neither model reads a schema: their replies are scripted or generated text
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "gpt-4o-mini"


class TestSimulatedChatModelUnit(_ModelSuite, ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return SimulatedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "simulated", "response_tokens": 8}


class TestScriptedChatModelUnit(_ModelSuite, ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ScriptedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"responses": ["Hello! How can I help?"], "cycle": True}


class TestSimulatedChatModelIntegration(_ModelSuite, ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return SimulatedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "simulated", "response_tokens": 8}


class TestScriptedChatModelIntegration(_ModelSuite, ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ScriptedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"responses": ["Hello! How can I help?"], "cycle": True}


# ---------------------------------------------------------------------- run memory
class TestMemoryManagerSync(BaseStoreSyncTests[Any]):
    @pytest.fixture
    def kv_store(self) -> BaseStore[str, Any]:
        return MemoryManager()

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:
        return "owls", ["hunt", "at night"], {"facts": 3}


class TestMemoryManagerAsync(BaseStoreAsyncTests[Any]):
    @pytest.fixture
    async def kv_store(self) -> BaseStore[str, Any]:
        return MemoryManager()

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:
        return "owls", ["hunt", "at night"], {"facts": 3}


class TestStagedMemorySync(BaseStoreSyncTests[Any]):
    """A task's view of run memory is a ``BaseStore`` too."""

    @pytest.fixture
    def kv_store(self) -> BaseStore[str, Any]:
        return StagedMemory(MemoryManager())

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:
        return "owls", ["hunt", "at night"], {"facts": 3}


class TestStagedMemoryAsync(BaseStoreAsyncTests[Any]):
    @pytest.fixture
    async def kv_store(self) -> BaseStore[str, Any]:
        return StagedMemory(MemoryManager())

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:
        return "owls", ["hunt", "at night"], {"facts": 3}
