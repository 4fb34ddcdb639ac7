"""From a request to an :class:`Orchestrator`, through the server's configuration only.

A request names models by id; each id resolves through ``RuntimeConfig.model`` or
the request is refused. Nothing in a request can choose a provider, a URL or code
to import. Prompts of a request are plain templates: a format spec or conversion
(``{x:>99999999}``, ``{x!r}``) is refused, as it could make the server build huge
strings.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from langchain_runtime.api.schemas import RunRequest, TaskSpec
from langchain_runtime.config import RuntimeConfig
from langchain_runtime.config.schema import SIMULATED
from langchain_runtime.domain import RunPolicy
from langchain_runtime.errors import ConfigurationError, GraphValidationError, InvalidInputError
from langchain_runtime.orchestration import Orchestrator, Task

__all__ = ["MAX_RETRIES", "build_orchestrator", "build_task"]

#: Most retries a task of a request may ask for.
MAX_RETRIES = 10


def _known_models(config: RuntimeConfig) -> list[str]:
    return sorted({*config.models, SIMULATED})


def check_prompt(prompt: str, where: str) -> None:
    """Refuse a malformed prompt, or one with format specs or conversions."""
    try:
        fields = list(string.Formatter().parse(prompt))
    except ValueError as exc:
        raise InvalidInputError(f"{where}.prompt: malformed template: {exc}") from None
    for _, name, spec, conversion in fields:
        if name is not None and (spec or conversion):
            raise InvalidInputError(
                f"{where}.prompt: {{{name}}} has a format spec or conversion; a request's "
                "prompt may only use plain {variable} placeholders"
            )


def build_task(
    config: RuntimeConfig, spec: TaskSpec, default_model: str | None, where: str
) -> Task:
    """A :class:`Task` from a request's task, its model resolved through ``config``.

    Raises:
        InvalidInputError: No model, an unknown model, a bad prompt or field.
        GraphValidationError: A field the task graph refuses (``$`` in the id...).
    """
    model_id = spec.model or default_model
    known = _known_models(config)
    if model_id is None:
        raise InvalidInputError(
            f"{where}.model: task {spec.id!r} names no model and the request gives no "
            f"default `model`; expected one of: {', '.join(known)}"
        )
    if model_id not in known:
        raise InvalidInputError(
            f"{where}.model: unknown model id {model_id!r}; expected one of the server's "
            f"models: {', '.join(known)}"
        )
    if spec.max_retries > MAX_RETRIES:
        raise InvalidInputError(f"{where}.max_retries: at most {MAX_RETRIES}")
    check_prompt(spec.prompt, where)
    model = config.model(model_id)
    try:
        return Task(
            spec.id,
            prompt=spec.prompt,
            model=model,
            deps=spec.deps,
            inputs=spec.inputs,
            context=spec.context.to_policy() if spec.context is not None else None,
            timeout=spec.timeout,
            max_retries=spec.max_retries,
            metadata=spec.metadata,
            memory_key=spec.memory_key,
        )
    except GraphValidationError as exc:
        raise GraphValidationError(f"{where}: {exc}", task_ids=exc.task_ids, code=exc.code) from exc
    except (ValueError, TypeError) as exc:
        # langchain's template checks (e.g. "{a.b}") raise plain ValueErrors
        raise InvalidInputError(f"{where}.prompt: {exc}") from exc


def _policy(config: RuntimeConfig, base: RunPolicy, request: RunRequest) -> RunPolicy:
    policy = base
    if request.policy_name is not None:
        try:
            policy = config.policy(request.policy_name)
        except ConfigurationError as exc:
            raise InvalidInputError(f"policy_name: {exc}") from exc
    if request.policy is not None:
        policy = request.policy.apply(policy)
    return policy


def build_orchestrator(
    config: RuntimeConfig, workflows: Mapping[str, Orchestrator], request: RunRequest
) -> Orchestrator:
    """The orchestrator a request runs: a registered workflow or its own tasks.

    Raises:
        InvalidInputError: An unknown workflow, model or policy; a bad field.
        GraphValidationError: The tasks do not form a valid graph (``dag_cycle``,
            ``dep_not_found``, ``dag_invalid``).
        ConfigurationError: It can not run under this configuration (a cost budget
            over a model with no known price).
    """
    name = request.workflow
    if name is not None:
        if name in workflows:
            orch = workflows[name]
            policy = _policy(config, orch.policy, request)
            if policy == orch.policy:
                return orch
            return Orchestrator(
                orch.graph,
                policy=policy,
                catalog=orch.catalog,
                input_keys=orch.input_keys,
                name=orch.get_name(),
            )
        if name in config.workflows:
            policy = _policy(config, config.workflow_policy(name), request)
            return config.build_workflow(name, policy_override=policy)
        known = sorted({*workflows, *config.workflows})
        raise InvalidInputError(
            f"workflow: no workflow {name!r}; expected one of: {', '.join(known) or 'none'}"
        )
    assert request.tasks is not None  # RunRequest checks: tasks or workflow
    tasks = [
        build_task(config, spec, request.model, f"tasks[{i}]")
        for i, spec in enumerate(request.tasks)
    ]
    policy = _policy(config, config.policy(), request)
    return Orchestrator(tasks, policy=policy, catalog=config.catalog(), name="run")
