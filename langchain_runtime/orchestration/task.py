"""``Task``: one node of a workflow and what it runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel, BaseLanguageModel
from langchain_core.prompts import BasePromptTemplate, ChatPromptTemplate, PromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda

from langchain_runtime._fields import unknown_field_message
from langchain_runtime.domain import Budget, ContextPolicy
from langchain_runtime.errors import ConfigurationError, GraphValidationError

__all__ = ["Task"]

#: Prefix of a routing source that reads the run input.
INPUT_PREFIX = "$input"
#: Prefix of a routing source that reads run memory.
MEMORY_PREFIX = "$memory"


class Task:
    """One unit of work in a task graph.

    What runs is one of: any ``Runnable`` (a chain, an agent, a chat model), a
    plain callable (wrapped in a ``RunnableLambda``), or ``prompt`` (template text
    or a prompt template) piped into ``model``.

    Args:
        id: Unique id in the graph; also the child run's name in traces and the
            prompt variable that carries this task's output to its dependents.
        runnable: What to run. Receives a dict: the run input, overlaid with each
            dependency's output under its task id and with ``inputs``.
        prompt: Template text (``"Summarise {research}"``) or a prompt template,
            piped into ``model``.
        model: A chat model (with ``prompt``), or a model id string used to price
            a runnable whose model cannot be discovered.
        deps: Ids of the tasks that must complete first.
        inputs: Prompt variable -> source: a task id (``"research"``), a field of a
            dict output (``"research.summary"``), the run input (``"$input.topic"``)
            or run memory (``"$memory.facts"``). A task named here is an implicit
            dependency.
        context: Context policy for this task, overriding the run's.
        timeout: Seconds one attempt may take.
        max_retries: Extra attempts after a retryable error.
        metadata: Metadata added to this task's child run.
        memory_key: Store this task's output in run memory under this key.
        budget: Limits for this task's own model calls, on top of the run's budget.

    Example:
        >>> from langchain_runtime.testing import SimulatedChatModel
        >>> t = Task("outline", prompt="Outline: {research}", model=SimulatedChatModel(),
        ...          deps=["research"])
        >>> t.prompt_variables
        ('research',)
    """

    __slots__ = (
        "budget",
        "context",
        "deps",
        "id",
        "inputs",
        "max_retries",
        "memory_key",
        "metadata",
        "model",
        "model_id",
        "prompt",
        "prompt_variables",
        "runnable",
        "timeout",
    )

    def __init__(
        self,
        id: str,
        runnable: Runnable[Any, Any] | Callable[..., Any] | None = None,
        *,
        prompt: str | BasePromptTemplate[Any] | None = None,
        model: BaseLanguageModel[Any] | Runnable[Any, Any] | str | None = None,
        deps: Iterable[str] = (),
        inputs: Mapping[str, str] | None = None,
        context: ContextPolicy | None = None,
        timeout: float | None = None,
        max_retries: int = 0,
        metadata: Mapping[str, Any] | None = None,
        memory_key: str | None = None,
        budget: Budget | None = None,
        **unknown: Any,
    ):
        if unknown:
            _refuse_unknown(id, unknown)
        if not isinstance(id, str) or not id.strip():
            raise GraphValidationError(
                f"task id must be a non-empty string, got {id!r}", code="invalid_input"
            )
        if id.startswith("$"):
            raise GraphValidationError(
                f"task id {id!r} may not start with '$'", task_ids=(id,), code="invalid_input"
            )
        self.id = id
        if isinstance(deps, str):
            deps = (deps,)
        dep_list = list(dict.fromkeys(deps))
        for dep in dep_list:
            if not isinstance(dep, str):
                raise GraphValidationError(
                    f"task {id!r}: dependency ids must be strings, got {dep!r}",
                    task_ids=(id,),
                    code="invalid_input",
                )
        self.inputs: dict[str, str] = dict(inputs or {})
        for var, source in self.inputs.items():
            if not isinstance(source, str) or not source:
                raise GraphValidationError(
                    f"task {id!r}: inputs[{var!r}] must be a source string such as "
                    f"'task_id', 'task_id.field' or '$input.key', got {source!r}",
                    task_ids=(id,),
                    code="invalid_input",
                )
            if not source.startswith("$"):
                dep = source.split(".", 1)[0]
                if source in dep_list or dep in dep_list:
                    continue
                # A task named as a source is an implicit dependency; a dotted name
                # whose whole text is a task id is resolved later, on the graph.
                dep_list.append(dep)
        self.deps: tuple[str, ...] = tuple(dep_list)
        if timeout is not None and not timeout > 0:
            raise GraphValidationError(
                f"task {id!r}: timeout must be > 0, got {timeout!r}",
                task_ids=(id,),
                code="invalid_input",
            )
        if not isinstance(max_retries, int) or max_retries < 0:
            raise GraphValidationError(
                f"task {id!r}: max_retries must be an int >= 0, got {max_retries!r}",
                task_ids=(id,),
                code="invalid_input",
            )
        self.timeout = timeout
        self.max_retries = max_retries
        self.context = context
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.memory_key = memory_key
        if budget is not None and not isinstance(budget, Budget):
            raise GraphValidationError(
                f"task {id!r}: budget must be a Budget, got {type(budget).__name__}",
                task_ids=(id,),
                code="invalid_input",
            )
        self.budget = budget
        self.model_id: str | None = model if isinstance(model, str) else None
        self.prompt: BasePromptTemplate[Any] | None = None
        self.model: Runnable[Any, Any] | None = None
        self.runnable: Runnable[Any, Any] = self._resolve(runnable, prompt, model)
        self.prompt_variables: tuple[str, ...] = (
            tuple(self.prompt.input_variables) if self.prompt is not None else ()
        )

    def _resolve(
        self,
        runnable: Runnable[Any, Any] | Callable[..., Any] | None,
        prompt: str | BasePromptTemplate[Any] | None,
        model: BaseLanguageModel[Any] | Runnable[Any, Any] | str | None,
    ) -> Runnable[Any, Any]:
        if prompt is None:
            if runnable is None:
                if isinstance(model, BaseLanguageModel):
                    return self._resolve(None, "{input}", model)
                raise GraphValidationError(
                    f"task {self.id!r}: give a runnable, a callable, or prompt= with model=",
                    task_ids=(self.id,),
                    code="invalid_input",
                )
            if isinstance(runnable, BaseLanguageModel):
                # a model alone gets the run input's "input" (the text an orchestrator
                # invoked with a plain string receives), as a prompt the runtime owns
                return self._resolve(None, "{input}", runnable)
            if isinstance(runnable, Runnable):
                return runnable
            if callable(runnable):
                return RunnableLambda(runnable, name=self.id)
            raise GraphValidationError(
                f"task {self.id!r}: runnable must be a Runnable or a callable, "
                f"got {type(runnable).__name__}",
                task_ids=(self.id,),
                code="invalid_input",
            )
        # prompt given: it pipes into the model (a model passed as runnable counts).
        if runnable is not None and model is None and isinstance(runnable, Runnable):
            model, runnable = runnable, None
        if runnable is not None:
            raise GraphValidationError(
                f"task {self.id!r}: give either a runnable or prompt= with model=, not both",
                task_ids=(self.id,),
                code="invalid_input",
            )
        if not isinstance(model, Runnable):
            hint = (
                f" (got the model id {model!r}; pass a chat model object, or load the "
                "workflow from a config file whose model registry defines it)"
                if isinstance(model, str)
                else ""
            )
            raise GraphValidationError(
                f"task {self.id!r}: prompt= needs a model=, a chat model or Runnable{hint}",
                task_ids=(self.id,),
                code="invalid_input",
            )
        if isinstance(prompt, str):
            template: BasePromptTemplate[Any] = (
                PromptTemplate.from_template(prompt)
                if isinstance(model, BaseLanguageModel) and not isinstance(model, BaseChatModel)
                else ChatPromptTemplate.from_messages([("human", prompt)])
            )
        elif isinstance(prompt, BasePromptTemplate):
            template = prompt
        else:
            raise GraphValidationError(
                f"task {self.id!r}: prompt must be text or a prompt template, "
                f"got {type(prompt).__name__}",
                task_ids=(self.id,),
                code="invalid_input",
            )
        self.prompt = template
        self.model = model
        return template | model

    def __repr__(self) -> str:
        deps = f", deps={list(self.deps)!r}" if self.deps else ""
        return f"Task({self.id!r}{deps})"


def _refuse_unknown(task_id: Any, unknown: Mapping[str, Any]) -> None:
    """A misspelt keyword (``max_retry=2``) must not build a task without it."""
    import inspect

    known = [
        name
        for name, param in inspect.signature(Task.__init__).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY or name == "runnable"
    ]
    lines = [
        f"Task {task_id!r}: {key}: {unknown_field_message(key, known)}" for key in sorted(unknown)
    ]
    raise ConfigurationError("\n".join(lines))
