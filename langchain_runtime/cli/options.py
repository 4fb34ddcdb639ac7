"""Turning command-line values into what the library takes: run input, policy, workflow."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from langchain_runtime.cli.errors import CliError
from langchain_runtime.config import ModelSpec, RuntimeConfig, load_config
from langchain_runtime.domain import Budget, RunPolicy

_SIMULATED = "simulated"

__all__ = [
    "LoadedWorkflow",
    "load",
    "parse_budget",
    "parse_run_input",
    "priced_name",
    "require_inputs",
    "with_overrides",
]


@dataclass(frozen=True)
class LoadedWorkflow:
    """A configuration file, the workflow chosen in it and the policy it runs under."""

    config: RuntimeConfig
    name: str
    policy: RunPolicy

    @property
    def source(self) -> str:
        return self.config.source


def parse_run_input(pairs: Sequence[str] | None, input_file: Path | None) -> dict[str, Any]:
    """The run input: ``--input-file`` (a JSON object), then each ``--input key=value``.

    Values given with ``--input`` are strings; use ``--input-file`` for other types.

    Raises:
        CliError: A pair without ``=`` or with an empty key, or an input file that
            cannot be read or is not a JSON object.
    """
    run_input: dict[str, Any] = {}
    if input_file is not None:
        try:
            data = json.loads(input_file.read_text(encoding="utf-8"))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise CliError(f"--input-file {input_file}: cannot read the file: {reason}") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CliError(f"--input-file {input_file}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise CliError(
                f"--input-file {input_file}: expected a JSON object of input keys, "
                f"got a {type(data).__name__}"
            )
        run_input.update(data)
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"--input {pair!r}: expected key=value, e.g. --input topic=owls")
        run_input[key] = value
    return run_input


def parse_budget(text: str | None) -> Decimal | None:
    """``--budget`` as money: ``0.05`` or ``$0.05``.

    Raises:
        CliError: Not a number, or negative.
    """
    if text is None:
        return None
    cleaned = text.strip().removeprefix("$").strip()
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0:
        raise CliError(f"--budget {text!r}: expected an amount of money >= 0, e.g. 0.05")
    return amount


def load(path: Path, workflow: str | None) -> LoadedWorkflow:
    """Load ``path`` and pick ``workflow`` (the only one when None).

    Raises:
        ConfigurationError: The file is unreadable or invalid, or names no such
            workflow (the message names the file and the field).
    """
    config = load_config(path)
    config.workflow(workflow)  # raises unless it names one (or the file has only one)
    name = workflow if workflow is not None else next(iter(config.workflows))
    return LoadedWorkflow(config, name, config.workflow_policy(name))


def with_overrides(
    policy: RunPolicy, *, budget: Decimal | None = None, max_parallelism: int | None = None
) -> RunPolicy:
    """``policy`` with ``--budget`` (its cost limit) and ``--max-parallelism`` applied.

    The budget's other limits (tokens, expected output) are kept.
    """
    data = policy.model_dump()
    if budget is not None:
        data["budget"] = {**(data.get("budget") or Budget().model_dump()), "max_cost": budget}
    if max_parallelism is not None:
        data["max_parallelism"] = max_parallelism
    return RunPolicy.model_validate(data)


def require_inputs(needed: Iterable[str], run_input: dict[str, Any]) -> None:
    """Refuse a run input that lacks keys the prompts need, saying how to give them.

    Raises:
        CliError: Some keys are missing.
    """
    missing = sorted(k for k in needed if k not in run_input)
    if missing:
        given = ", ".join(sorted(run_input)) or "none"
        how = " ".join(f"--input {k}=..." for k in missing)
        raise CliError(
            f"the run input is missing {', '.join(map(repr, missing))} (given: {given}); pass {how}"
        )


def priced_name(config: RuntimeConfig, model_id: str) -> str:
    """The model name that registry id ``model_id``'s calls report and are priced as.

    As the registry builds models: the entry's ``model``, else the registry id (else
    ``simulated`` for the simulated provider, which ``simulated`` also names when the
    registry does not define it).
    """
    entry = config.models.get(model_id) or ModelSpec(provider=_SIMULATED)
    return entry.model or (_SIMULATED if entry.provider == _SIMULATED else model_id)
