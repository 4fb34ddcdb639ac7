"""Unknown fields are errors on every public model, with the config loader's wording."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from langchain_runtime import (
    Budget,
    ConfigurationError,
    ContextPolicy,
    Cost,
    ModelUsage,
    Orchestrator,
    RunEvent,
    RunPolicy,
    RunResult,
    RunState,
    Task,
    TaskError,
    TaskResult,
    TaskState,
    Usage,
)
from langchain_runtime.config import load_config

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)

# every public model: (class, valid fields, a typo, the field it should suggest)
CASES: list[tuple[type[BaseModel], dict[str, Any], str, str]] = [
    (Budget, {}, "max_cst", "max_cost"),
    (RunPolicy, {}, "max_paralelism", "max_parallelism"),
    (ContextPolicy, {}, "stratgy", "strategy"),
    (Usage, {}, "input_tokns", "input_tokens"),
    (Cost, {}, "amout", "amount"),
    (ModelUsage, {}, "cals", "calls"),
    (TaskError, {"code": "x", "message": "y"}, "mesage", "message"),
    (TaskResult, {"task_id": "a", "state": TaskState.COMPLETED}, "ouput", "output"),
    (RunEvent, {"seq": 0, "type": "x", "run_id": "r", "ts": NOW}, "task", "task_id"),
    (RunResult, {"run_id": "r", "state": RunState.COMPLETED}, "outputz", "outputs"),
]


@pytest.mark.parametrize(("model", "valid", "typo", "meant"), CASES, ids=lambda v: str(v))
def test_an_unknown_field_is_an_error_naming_it_and_the_closest_field(
    model: type[BaseModel], valid: dict[str, Any], typo: str, meant: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        model(**valid, **{typo: 1})
    message = str(info.value)
    assert message.startswith(f"{model.__name__}: {typo}: unknown field")
    assert f"did you mean {meant!r}?" in message
    assert isinstance(info.value, ValueError)


def test_the_issue_typos_no_longer_build_objects_without_their_setting() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'max_cost'"):
        Budget(max_cst=1)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="did you mean 'max_parallelism'"):
        RunPolicy(max_paralelism=3)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="did you mean 'strategy'"):
        ContextPolicy(stratgy="truncate")  # type: ignore[call-arg]


def test_a_typo_in_a_nested_mapping_names_its_path() -> None:
    with pytest.raises(ConfigurationError) as info:
        RunPolicy(budget={"max_cst": 1}, context={"max_tokens": 10})  # type: ignore[arg-type]
    assert str(info.value) == (
        "RunPolicy: budget.max_cst: unknown field; did you mean 'max_cost'? "
        "(expected one of: currency, expected_output_tokens, max_cost, max_tokens)"
    )


def test_the_wording_is_the_config_loaders() -> None:
    with pytest.raises(ConfigurationError) as from_yaml:
        load_config({"policies": {"default": {"budget": {"max_cst": 1}}}})
    with pytest.raises(ConfigurationError) as from_code:
        Budget(max_cst=1)  # type: ignore[call-arg]
    yaml_message = str(from_yaml.value).split("max_cst: ", 1)[1]
    code_message = str(from_code.value).split("max_cst: ", 1)[1]
    assert yaml_message == code_message


def test_every_problem_is_listed_when_a_typo_comes_with_a_bad_value() -> None:
    with pytest.raises(ConfigurationError) as info:
        Budget(max_cost=-1, max_tokns=5)  # type: ignore[call-arg]
    lines = str(info.value).splitlines()
    assert lines[0].startswith("Budget: max_cost: Input should be greater than or equal to 0")
    assert lines[1].startswith("Budget: max_tokns: unknown field; did you mean 'max_tokens'?")


def test_a_name_close_to_nothing_lists_the_fields_without_a_guess() -> None:
    with pytest.raises(ConfigurationError) as info:
        Cost(zzzz=1)  # type: ignore[call-arg]
    assert str(info.value) == "Cost: zzzz: unknown field (expected one of: amount, currency)"


def test_other_validation_errors_stay_pydantic_errors() -> None:
    with pytest.raises(ValidationError):
        RunPolicy(max_parallelism=0)


def test_model_validate_refuses_unknown_fields_too() -> None:
    # A ConfigurationError (a ValueError) with the did-you-mean, as the constructor's.
    with pytest.raises(ConfigurationError, match=r"max_paralelism.*did you mean 'max_parallelism'"):
        RunPolicy.model_validate({"max_paralelism": 3})
    with pytest.raises(ValueError, match="max_cst: unknown field; did you mean 'max_cost'"):
        Budget.model_validate({"max_cst": 1})


def test_valid_models_still_build_and_round_trip() -> None:
    policy = RunPolicy(
        max_parallelism=2,
        budget=Budget(max_cost=Decimal("0.5")),
        context=ContextPolicy(max_tokens=100, strategy="truncate"),
    )
    assert RunPolicy.model_validate(policy.model_dump()) == policy
    assert RunPolicy.model_validate_json(policy.model_dump_json()) == policy
    usage = Usage(input_tokens=3, output_tokens=4) + Usage(input_tokens=1)
    assert usage.total_tokens == 8
    assert Usage.model_construct(input_tokens=1).input_tokens == 1


def test_a_typo_in_a_task_keyword_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="dep: unknown field; did you mean 'deps'"):
        Task("a", lambda x: x, dep=["b"])


def test_a_typo_in_an_orchestrator_keyword_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'policy'"):
        Orchestrator([Task("a", lambda x: x)], polcy=RunPolicy())
