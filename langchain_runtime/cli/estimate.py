"""``langchain-runtime estimate``: a workflow file's run estimated before it runs.

The estimate itself is :mod:`langchain_runtime.cost.estimate` (the same one
``RunPolicy(admission="worst_case")`` admits runs with); this module builds it from
a configuration file: each task's registry model gives the name its calls are
priced as and its own ``max_tokens``. Nothing is called and no model is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from langchain_runtime.cli.options import (
    LoadedWorkflow,
    load,
    parse_budget,
    parse_run_input,
    priced_name,
    require_inputs,
    with_overrides,
)
from langchain_runtime.config import ModelSpec
from langchain_runtime.context.router import ContextRouter
from langchain_runtime.cost.estimate import (
    Bound,
    PricedTask,
    RunEstimate,
    TaskEstimate,
    estimate_priced,
)
from langchain_runtime.orchestration import Task, TaskGraph
from langchain_runtime.testing import SimulatedChatModel

__all__ = [
    "Bound",
    "RunEstimate",
    "TaskEstimate",
    "estimate",
    "estimate_file",
    "unpriced_hint",
]

_SIMULATED = "simulated"


def estimate(loaded: LoadedWorkflow, run_input: Mapping[str, Any]) -> RunEstimate:
    """Estimate a run of ``loaded`` on ``run_input`` without calling any model.

    Raises:
        ConfigurationError, GraphValidationError: The workflow is invalid.
        CliError: The run input lacks keys the prompts need.
    """
    loaded.config.check(loaded.name)
    config, workflow = loaded.config, loaded.config.workflow(loaded.name)
    stand_in = SimulatedChatModel()  # only for the prompt templates; never called
    priced: list[PricedTask] = []
    for spec in workflow.tasks:
        model_id = spec.model or workflow.model or _SIMULATED
        entry = config.models.get(model_id) or ModelSpec(provider=_SIMULATED)
        own = entry.params.get("max_tokens")
        task = Task(
            spec.id,
            prompt=spec.prompt,
            model=stand_in,
            deps=spec.deps,
            inputs=spec.inputs,
            context=spec.context.to_policy() if spec.context is not None else None,
            max_retries=spec.max_retries,
            memory_key=spec.memory_key,
        )
        priced.append(
            PricedTask(
                task=task,
                model=model_id,
                priced_as=priced_name(config, model_id),
                max_tokens=own if isinstance(own, int) and own > 0 else None,
            )
        )
    graph = TaskGraph(p.task for p in priced)
    require_inputs(ContextRouter().validate(graph, workflow.input_keys), dict(run_input))
    return estimate_priced(
        priced,
        graph.order,
        run_input,
        policy=loaded.policy,
        catalog=config.catalog(),
        source=config.source,
        workflow=loaded.name,
    )


def estimate_file(
    path: Path,
    *,
    inputs: Sequence[str] | None = None,
    input_file: Path | None = None,
    workflow: str | None = None,
    budget: str | None = None,
) -> RunEstimate:
    """:func:`estimate` from command-line values (``--budget`` replaces the cost limit).

    Raises:
        CliError: A bad ``--input``, ``--input-file`` or ``--budget``, or missing input.
        ConfigurationError, GraphValidationError: The file or workflow is invalid.
    """
    amount = parse_budget(budget)
    run_input = parse_run_input(inputs, input_file)
    loaded = load(path, workflow)
    if amount is not None:
        loaded = replace(loaded, policy=with_overrides(loaded.policy, budget=amount))
    return estimate(loaded, run_input)


def unpriced_hint(est: RunEstimate, path: Path, workflow: str | None) -> str | None:
    """What to add to ``path`` when some tasks' models have no price (None when all do)."""
    config = load(path, workflow).config
    missing = sorted({priced_name(config, t.model) for t in est.tasks if t.cost_low is None})
    if not missing:
        return None
    example = missing[0]
    return (
        f"no price for {', '.join(map(repr, missing))}, so the cost cannot be known; add it "
        f"under `prices:`, e.g. prices: {{{example}: {{input: 1.0, output: 2.0}}}} (USD per "
        "1M tokens)"
    )
