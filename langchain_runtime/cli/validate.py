"""``validate``: check a workflow file without running anything or building a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from langchain_runtime.cli.options import priced_name
from langchain_runtime.cli.render import format_money, format_tokens
from langchain_runtime.config import RuntimeConfig, load_config
from langchain_runtime.domain import RunPolicy
from langchain_runtime.errors import ConfigurationError

__all__ = [
    "WorkflowSummary",
    "check_prices",
    "check_providers",
    "missing_keys",
    "print_summaries",
    "validate",
]

_SIMULATED = "simulated"


@dataclass(frozen=True)
class WorkflowSummary:
    """What a valid workflow holds: its tasks, the models they use, its policy."""

    name: str
    tasks: int
    models: tuple[str, ...]
    policy: RunPolicy


def check_providers(config: RuntimeConfig) -> None:
    """Every registry entry names a provider some integration knows (offline).

    Raises:
        ConfigurationError: ``unknown provider 'simulatd'; did you mean 'simulated'?``
    """
    from langchain_runtime.config._providers import check_provider

    for model_id, entry in config.models.items():
        try:
            check_provider(model_id, entry.provider)
        except ConfigurationError as exc:
            why = str(exc).partition(": ")[2]  # without check_provider's "model 'm': "
            raise ConfigurationError(f"{config.source}: models.{model_id}.provider: {why}") from exc


def check_prices(config: RuntimeConfig, name: str, policy: RunPolicy) -> None:
    """A cost budget needs a price for every model its tasks use (else the run refuses)."""
    if policy.budget is None or policy.budget.max_cost is None:
        return
    catalog = config.catalog()
    workflow = config.workflow(name)
    for task in workflow.tasks:
        model_id = task.model or workflow.model or _SIMULATED
        model = priced_name(config, model_id)
        if catalog.find(model) is None:
            raise ConfigurationError(
                f"{config.source}: workflow {name!r}, task {task.id!r}: model {model_id!r} "
                f"({model}) has no price, and the workflow has a cost budget; add it under "
                f"`prices:`, e.g. prices: {{{model}: {{input: 1.0, output: 2.0}}}} (USD per "
                "1M tokens)"
            )


def missing_keys(config: RuntimeConfig) -> list[str]:
    """Warnings for registry entries whose API key variable is not set.

    Not errors: a file is checked without keys; running it needs them.
    """
    import os

    from langchain_runtime.config._providers import _KEY_VARIABLES, api_key_variable

    needing: dict[str, list[str]] = {}
    for model_id, entry in config.models.items():
        if entry.provider == _SIMULATED:
            continue
        if entry.api_key_env is None and entry.provider not in _KEY_VARIABLES:
            continue  # a provider whose credentials we cannot name (e.g. cloud logins)
        variable = entry.api_key_env or api_key_variable(entry.provider)
        if not os.environ.get(variable):
            needing.setdefault(variable, []).append(f"{model_id!r} ({entry.provider})")
    warnings = [
        f"running needs ${variable}, which is not set (for model{'s' if len(models) > 1 else ''} "
        f"{', '.join(models)})"
        for variable, models in needing.items()
    ]
    return warnings


def validate(path: Path, workflow: str | None = None) -> list[WorkflowSummary]:
    """Check the file, and one workflow (or every workflow) in it, offline.

    Raises:
        ConfigurationError, GraphValidationError, InvalidInputError: What is wrong,
            naming the file, the line and field when known, and the task.
    """
    config = load_config(path)
    check_providers(config)
    config.check(workflow)
    names = [workflow] if workflow is not None else sorted(config.workflows)
    summaries = []
    for name in names:
        spec = config.workflow(name)
        policy = config.workflow_policy(name)
        check_prices(config, name, policy)
        models = {t.model or spec.model or _SIMULATED for t in spec.tasks}
        summaries.append(WorkflowSummary(name, len(spec.tasks), tuple(sorted(models)), policy))
    return summaries


def _policy_text(policy: RunPolicy) -> str:
    parts = [f"max_parallelism {policy.max_parallelism}", policy.scheduling]
    budget = policy.budget
    if budget is not None and budget.max_cost is not None:
        parts.append(f"budget {format_money(budget.max_cost, budget.currency)}")
    if budget is not None and budget.max_tokens is not None:
        parts.append(f"{format_tokens(budget.max_tokens)} tokens")
    if budget is None or (budget.max_cost is None and budget.max_tokens is None):
        parts.append("no budget")
    if policy.timeout is not None:
        parts.append(f"timeout {policy.timeout:g}s")
    return ", ".join(parts)


def print_summaries(console: Console, path: Path, summaries: list[WorkflowSummary]) -> None:
    """One line per valid workflow."""
    for s in summaries:
        console.print(
            f"[green]✓[/] {escape(str(path))}: workflow {escape(s.name)!r} is valid: "
            f"{s.tasks} tasks, models {escape(', '.join(s.models))}; {_policy_text(s.policy)}",
            soft_wrap=True,
            highlight=False,
        )
