"""``ContextBuilder``: a task's input from the run input, its dependencies and memory."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig

from langchain_runtime.context.compaction import CompactionResult, ContextCompactor
from langchain_runtime.context.memory import MemoryManager, MemoryScope, StagedMemory
from langchain_runtime.context.router import ContextRouter
from langchain_runtime.domain import ContextPolicy

if TYPE_CHECKING:
    from langchain_runtime.orchestration.task import Task

__all__ = ["ContextBuilder", "current_memory"]

_SCOPE: contextvars.ContextVar[MemoryScope | None] = contextvars.ContextVar(
    "langchain_runtime_memory", default=None
)
_TASK: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "langchain_runtime_task", default=None
)


def current_memory() -> MemoryManager | StagedMemory:
    """The memory of the run whose task is calling (inside any task's code).

    Inside a task it is the task's :class:`StagedMemory`: reads see the run's memory
    and the task's own writes; the writes join the run's memory when the task is
    committed.

    Example:
        >>> from langchain_runtime import Orchestrator, Task
        >>> def remember(inp):
        ...     current_memory().mset([("seen", inp["topic"])])
        ...     return "ok"
        >>> Orchestrator([Task("a", remember)]).invoke({"topic": "owls"}).memory
        {'seen': 'owls'}

    Raises:
        LookupError: Called outside a run.
    """
    scope = _SCOPE.get()
    if scope is None:
        raise LookupError("current_memory() is only available inside a running task")
    task_id = _TASK.get()
    return scope.view(task_id) if task_id is not None else scope.base


def current_task_id() -> str | None:
    """The id of the task whose code is running in this context, if any."""
    return _TASK.get()


def bind_memory(scope: MemoryScope) -> contextvars.Token[MemoryScope | None]:
    """Make ``scope`` the run memory :func:`current_memory` serves in this context."""
    return _SCOPE.set(scope)


def unbind_memory(token: contextvars.Token[MemoryScope | None]) -> None:
    """Undo :func:`bind_memory`."""
    _SCOPE.reset(token)


def enter_task(task_id: str) -> contextvars.Token[str | None]:
    """Mark this context as running ``task_id`` (its memory view, its writes)."""
    return _TASK.set(task_id)


def exit_task(token: contextvars.Token[str | None]) -> None:
    """Undo :func:`enter_task`."""
    _TASK.reset(token)


class ContextBuilder:
    """Assembles what a task receives, then keeps it inside the context policy.

    The input is the run input overlaid with the routed variables (each completed
    dependency's output under its task id, plus the task's ``inputs`` sources).
    With a context policy, the routed variables are compacted before the call;
    a summarising policy uses ``summarizer`` or else the task's own chat model.

    Args:
        router: Resolves variables (a default ``ContextRouter``).
        compactor: Applies context policies (a default ``ContextCompactor``).
        summarizer: The chat model for ``summarize`` (default: the task's model).
    """

    def __init__(
        self,
        router: ContextRouter | None = None,
        compactor: ContextCompactor | None = None,
        *,
        summarizer: BaseChatModel | None = None,
    ) -> None:
        self.router = router or ContextRouter()
        self.compactor = compactor or ContextCompactor()
        self.summarizer = summarizer

    async def abuild(
        self,
        task: Task,
        outputs: Mapping[str, Any],
        run_input: Mapping[str, Any],
        memory: Mapping[str, Any],
        *,
        policy: ContextPolicy | None = None,
        model: str | None = None,
        config: RunnableConfig | None = None,
    ) -> tuple[dict[str, Any], CompactionResult | None]:
        """The task's input and, when a policy applied, what compaction did."""
        variables = self.router.route(task, outputs, run_input, memory)
        compaction = None
        if policy is not None and (policy.strategy != "none" or policy.max_tokens is not None):
            summarizer = self.summarizer
            if summarizer is None and isinstance(task.model, BaseChatModel):
                summarizer = task.model
            compaction = await self.compactor.acompact(
                variables,
                policy,
                model=model,
                task_id=task.id,
                summarizer=summarizer,
                config=config,
            )
            variables = compaction.variables
        inp = {**run_input, **variables} if variables else dict(run_input)
        return inp, compaction
