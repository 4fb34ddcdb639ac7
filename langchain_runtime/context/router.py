"""``ContextRouter``: which value each prompt variable of a task receives."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from pydantic import BaseModel

from langchain_runtime.errors import GraphValidationError, InvalidInputError

if TYPE_CHECKING:
    from langchain_runtime.orchestration.graph import TaskGraph
    from langchain_runtime.orchestration.task import Task

__all__ = ["ContextRouter", "as_text", "message_variables", "routed"]

INPUT = "$input"
MEMORY = "$memory"


def as_text(value: Any) -> Any:
    """A chat message as its text, a list of messages as their texts joined (for display)."""
    if isinstance(value, BaseMessage):
        return value.text
    if _is_messages(value):
        return "\n".join(v.text for v in value)
    return value


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list) and bool(value) and all(isinstance(v, BaseMessage) for v in value)
    )


def message_variables(task: Task) -> frozenset[str]:
    """The variables of ``task``'s prompt that are ``MessagesPlaceholder`` variables."""
    prompt = task.prompt
    if not isinstance(prompt, ChatPromptTemplate):
        return frozenset()
    return frozenset(m.variable_name for m in prompt.messages if isinstance(m, MessagesPlaceholder))


def routed(task: Task, var: str, value: Any) -> Any:
    """``value`` as variable ``var`` of ``task`` receives it.

    A list of chat messages stays a list (a ``MessagesPlaceholder`` takes it as
    such, a runnable or callable receives the messages), except where the task's
    prompt expects text: a ``{var}`` in a template gets the texts joined by
    newlines. A single message routes as its text, except into a
    ``MessagesPlaceholder``, which gets it as a one-message list. Anything else
    routes unchanged.
    """
    if isinstance(value, BaseMessage):
        return [value] if var in message_variables(task) else value.text
    if _is_messages(value) and var in task.prompt_variables:
        return value if var in message_variables(task) else "\n".join(v.text for v in value)
    return value


class ContextRouter:
    """Maps dependency outputs, the run input and memory to a task's variables.

    By default each dependency's output is the variable named by its task id.
    ``Task.inputs`` selects explicitly: ``{"notes": "research"}`` renames,
    ``"research.summary"`` reads a field of a dict output (or an attribute),
    ``"$input.topic"`` reads the run input and ``"$memory.facts"`` run memory.
    Whatever the source, a list of chat messages stays a list (so a
    ``MessagesPlaceholder`` receives it, and ``keep_last_n`` can compact it) and a
    single message routes as its text where the prompt expects text (see
    :func:`routed`).

    Example:
        >>> from langchain_runtime import Task
        >>> t = Task("draft", lambda x: x, deps=["outline"], inputs={"topic": "$input.topic"})
        >>> ContextRouter().route(t, {"outline": "1. intro"}, {"topic": "owls"})
        {'outline': '1. intro', 'topic': 'owls'}
    """

    def route(
        self,
        task: Task,
        outputs: Mapping[str, Any],
        run_input: Mapping[str, Any],
        memory: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The variables ``task`` receives, from completed dependencies only."""
        variables: dict[str, Any] = {}
        for dep in task.deps:
            if dep in outputs:
                variables[dep] = routed(task, dep, outputs[dep])
        for var, source in task.inputs.items():
            variables[var] = self.resolve(task, var, source, outputs, run_input, memory or {})
        return variables

    def resolve(
        self,
        task: Task,
        var: str,
        source: str,
        outputs: Mapping[str, Any],
        run_input: Mapping[str, Any],
        memory: Mapping[str, Any],
    ) -> Any:
        """The value of one ``inputs`` source, or an error naming task and variable."""
        # every source routes chat messages the same way
        if _is_source(source, INPUT):
            path = source[len(INPUT) + 1 :]
            return routed(task, var, _select(run_input, path, task, var, source, "the run input"))
        if _is_source(source, MEMORY):
            path = source[len(MEMORY) + 1 :]
            return routed(task, var, _select(memory, path, task, var, source, "run memory"))
        dep, path = _split_task_source(source, task.deps)
        if dep not in outputs:
            raise InvalidInputError(
                f"task {task.id!r}: variable {var!r} reads {source!r}, but task {dep!r} "
                "has not completed"
            )
        return routed(task, var, _select_path(outputs[dep], path, task, var, source))

    def validate(self, graph: TaskGraph, input_keys: Iterable[str] | None = None) -> set[str]:
        """Check every task's prompt variables and sources against the graph.

        Returns the run-input keys that prompts need but nothing in the graph
        provides. With ``input_keys`` given, any such key not among them is an
        error; without, they become required keys of the run input.
        """
        known = set(input_keys) if input_keys is not None else None
        needed: set[str] = set()
        for task in graph:
            needed |= self.validate_task(task, graph, known)
        return needed

    def validate_task(
        self, task: Task, graph: TaskGraph, input_keys: set[str] | None = None
    ) -> set[str]:
        """Check one task's sources and prompt variables; return run-input keys it needs."""
        for var, source in task.inputs.items():
            check_source_path(task.id, var, source)
            if not source.startswith("$"):
                dep, _ = _split_task_source(source, task.deps)
                if dep not in graph:
                    raise GraphValidationError(
                        f"task {task.id!r}: inputs[{var!r}] reads {source!r}, "
                        f"but there is no task {dep!r}",
                        task_ids=(task.id, dep),
                        code="dep_not_found",
                    )
            elif not (_is_source(source, INPUT) or _is_source(source, MEMORY)):
                raise GraphValidationError(
                    f"task {task.id!r}: inputs[{var!r}] = {source!r} is not a known "
                    "source; use 'task_id', 'task_id.field', '$input.key' or '$memory.key'",
                    task_ids=(task.id,),
                    code="invalid_input",
                )
        needed: set[str] = set()
        for var in task.prompt_variables:
            if var in task.deps or var in task.inputs:
                continue
            if var in graph:
                raise GraphValidationError(
                    f"task {task.id!r}: its prompt uses {{{var}}}, the output of task "
                    f"{var!r}, but does not depend on it; add deps=[{var!r}]",
                    task_ids=(task.id, var),
                    code="dep_not_found",
                )
            if input_keys is not None and var not in input_keys:
                raise GraphValidationError(
                    f"task {task.id!r}: its prompt uses {{{var}}}, which no dependency, "
                    f"inputs entry or run input key ({sorted(input_keys)}) provides",
                    task_ids=(task.id,),
                    code="invalid_input",
                )
            needed.add(var)
        return needed


def _is_source(source: str, prefix: str) -> bool:
    return source == prefix or source.startswith(prefix + ".")


def _split_task_source(source: str, deps: Iterable[str]) -> tuple[str, str]:
    """Split ``"task.field.sub"`` into the longest task id among deps and the path."""
    if source in deps:
        return source, ""
    best = source.split(".", 1)[0]
    for dep in deps:
        if source.startswith(dep + ".") and len(dep) > len(best):
            best = dep
    return best, source[len(best) + 1 :]


def _select(
    root: Mapping[str, Any], path: str, task: Task, var: str, source: str, where: str
) -> Any:
    if not path:
        return dict(root)
    head, _, rest = path.partition(".")
    if head not in root:
        raise InvalidInputError(
            f"task {task.id!r}: variable {var!r} reads {source!r}, but {where} has no "
            f"key {head!r} (keys: {sorted(root)})"
        )
    return _select_path(root[head], rest, task, var, source)


def _select_path(value: Any, path: str, task: Task, var: str, source: str) -> Any:
    """Follow ``path`` through data only: mapping keys, declared fields of a pydantic
    model (a message's ``content``), list indexes. Never arbitrary attributes: a
    path like ``x.__class__.__init__.__globals__`` must not reach the process."""
    for part in path.split(".") if path else ():
        if isinstance(value, Mapping):
            if part not in value:
                raise InvalidInputError(
                    f"task {task.id!r}: variable {var!r} reads {source!r}, but the value "
                    f"has no field {part!r} (fields: {sorted(map(str, value))})"
                )
            value = value[part]
        elif isinstance(value, BaseModel) and part in type(value).model_fields:
            value = getattr(value, part)
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise InvalidInputError(
                f"task {task.id!r}: variable {var!r} reads {source!r}, but a "
                f"{type(value).__name__} has no field {part!r}"
            )
    return value


def check_source_path(task_id: str, var: str, source: str) -> None:
    """Refuse private names in a source path before anything runs."""
    for part in source.split(".")[1:]:
        if not part or part.startswith("_"):
            raise GraphValidationError(
                f"task {task_id!r}: inputs[{var!r}] = {source!r}: field names may not be "
                "empty or start with '_'",
                task_ids=(task_id,),
                code="invalid_input",
            )
