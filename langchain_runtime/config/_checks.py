"""Checks across fields: references between models, policies and tasks, and secrets.

Pydantic validates each field on its own; these checks need the whole document (a
task's ``model`` must be a registry id, a ``deps`` entry must be a task of the same
workflow), and report each problem at the field path where it was written.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator

from pydantic import ValidationError

from langchain_runtime.config._errors import Loc
from langchain_runtime.config._providers import (
    SimulatedParams,
    api_key_variable,
    find_secrets,
    known_providers,
)
from langchain_runtime.config.schema import SIMULATED, ConfigSpec, ModelSpec, WorkflowSpec

__all__ = ["check_config"]

#: A problem: where it is (from the document root) and what is wrong.
Problem = tuple[Loc, str]


#: Parameters of the simulated provider that no real provider takes (``max_tokens``
#: is everyone's).
_SIMULATED_ONLY = frozenset(SimulatedParams.model_fields) - {"max_tokens"}


def check_config(spec: ConfigSpec) -> list[Problem]:
    """Every cross-field problem in ``spec``, in document order."""
    problems: list[Problem] = []
    for model_id, model in spec.models.items():
        problems += _check_model(("models", model_id), model)
    model_ids = sorted({*spec.models, SIMULATED})
    for name, workflow in spec.workflows.items():
        problems += _check_workflow(("workflows", name), workflow, model_ids, spec)
    return problems


def _did_you_mean(value: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_model(loc: Loc, spec: ModelSpec) -> Iterator[Problem]:
    variable = api_key_variable(spec.provider)
    for where in find_secrets(spec.params):
        yield (
            (*loc, *where),
            "secrets are not read from configuration files; remove it and set the "
            f"environment variable {variable} instead (or name another variable with "
            "api_key_env)",
        )
    if spec.provider != SIMULATED:
        if spec.provider not in known_providers():
            return  # a misspelled provider is reported as such (check_provider)
        for name in [k for k in spec.params if k in _SIMULATED_ONLY]:
            yield (
                (*loc, name),
                f"only the simulated provider understands {name!r}; provider "
                f"{spec.provider!r} would receive it as a model parameter: remove it",
            )
        return
    if spec.api_key_env is not None:
        yield (*loc, "api_key_env"), "the simulated provider takes no API key"
    try:
        SimulatedParams.model_validate(spec.params)
    except ValidationError as exc:
        allowed = ", ".join(["model", *SimulatedParams.model_fields])
        for err in exc.errors():
            if err["type"] == "extra_forbidden":
                message = f"not a parameter of the simulated provider (expected: {allowed})"
            else:
                expected = str(err["msg"]).replace("Input should be ", "expected ")
                message = f"{expected}, got {err.get('input')!r}"
            yield (*loc, *err["loc"]), message


def _check_workflow(
    loc: Loc, workflow: WorkflowSpec, model_ids: list[str], spec: ConfigSpec
) -> Iterator[Problem]:
    known_models = ", ".join(model_ids)
    policy = workflow.policy
    if isinstance(policy, str) and policy not in spec.policies and policy != "default":
        names = ", ".join(sorted(spec.policies)) or "none are defined"
        yield (
            (*loc, "policy"),
            f"unknown policy {policy!r}; expected a name from policies ({names}) or an "
            "inline policy",
        )
    if workflow.model is not None and workflow.model not in model_ids:
        yield (
            (*loc, "model"),
            f"unknown model id {workflow.model!r}"
            f"{_did_you_mean(workflow.model, model_ids)}; expected one of the model "
            f"registry's ids: {known_models}",
        )
    task_ids: dict[str, int] = {}
    for index, task in enumerate(workflow.tasks):
        if task.id in task_ids:
            yield (
                (*loc, "tasks", index, "id"),
                f"duplicate task id {task.id!r} (also tasks[{task_ids[task.id]}])",
            )
        else:
            task_ids[task.id] = index
    known_tasks = ", ".join(sorted(task_ids))
    for index, task in enumerate(workflow.tasks):
        here = (*loc, "tasks", index)
        unknown = [dep for dep in task.deps if dep not in task_ids]
        if unknown:
            yield (
                (*here, "deps"),
                f"task {task.id!r} depends on unknown task(s) {', '.join(map(repr, unknown))}; "
                f"expected ids of this workflow's tasks: {known_tasks}",
            )
        if task.id in task.deps:
            yield (*here, "deps"), f"task {task.id!r} depends on itself"
        if task.model is not None and task.model not in model_ids:
            yield (
                (*here, "model"),
                f"task {task.id!r} uses unknown model id {task.model!r}"
                f"{_did_you_mean(task.model, model_ids)}; expected one of the model "
                f"registry's ids: {known_models}",
            )
        elif task.model is None and workflow.model is None:
            yield (
                (*here, "model"),
                f"task {task.id!r} names no model and the workflow has no default `model`; "
                f"expected one of: {known_models}",
            )
    if workflow.output is not None and workflow.output not in task_ids:
        yield (
            (*loc, "output"),
            f"output {workflow.output!r} is not a task of this workflow; expected one of: "
            f"{known_tasks}",
        )
