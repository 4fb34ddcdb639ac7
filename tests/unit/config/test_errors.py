"""Every way a configuration can be wrong, and what the error says about it.

Each message must name the file, the field path and what was expected, and give
the line when the file is YAML.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from langchain_runtime import ConfigurationError, GraphValidationError
from langchain_runtime.config import ConfigFileError, ConfigIssue, load_config, load_workflow
from tests.unit.config._samples import MULTI

Write = Callable[[str, str], Path]


def _fails(path_or_dict: Path | dict[str, Any]) -> ConfigFileError:
    with pytest.raises(ConfigFileError) as info:
        load_config(path_or_dict)
    assert isinstance(info.value, ConfigurationError)
    return info.value


def _one(error: ConfigFileError) -> ConfigIssue:
    assert len(error.issues) == 1, str(error)
    return error.issues[0]


def _paths(error: ConfigFileError) -> list[str]:
    return [issue.path for issue in error.issues]


def _wf(*tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"workflows": {"research": {"tasks": list(tasks), **extra}}}


def _task(id: str, **fields: Any) -> dict[str, Any]:
    return {"id": id, "prompt": f"do {id}", "model": "simulated", **fields}


# -- parsing ------------------------------------------------------------------


def test_yaml_syntax_error_gives_file_and_line(write: Write) -> None:
    path = write("bad.yaml", "models:\n  fast: {provider: simulated\nworkflows: {}\n")
    issue = _one(_fails(path))
    assert issue.line == 3
    assert str(_fails(path)).startswith(f"{path}:3: invalid YAML at column 10:")


def test_json_syntax_error_gives_file_and_line(write: Write) -> None:
    path = write("bad.json", '{\n  "models": {\n    "a": 1,\n  }\n}\n')
    message = str(_fails(path))
    assert message.startswith(f"{path}:4: invalid JSON")
    assert "double quotes" in message


def test_missing_file_is_named() -> None:
    message = str(_fails(Path("no/such/runtime.yaml")))
    assert message == "no/such/runtime.yaml: cannot read the file: No such file or directory"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "got an empty document"),
        ("- a\n- b\n", "got a list"),
    ],
)
def test_top_level_must_be_a_mapping(write: Write, text: str, expected: str) -> None:
    message = str(_fails(write("c.yaml", text)))
    assert "expected a mapping with models, prices, policies and workflows" in message
    assert expected in message


def test_duplicate_yaml_key_is_an_error(write: Write) -> None:
    path = write("dup.yaml", "models:\n  a: {provider: simulated}\n  a: {provider: openai}\n")
    issue = _one(_fails(path))
    assert (issue.path, issue.line) == ("models.a", 3)
    assert "duplicate key 'a' (first given at line 2)" in issue.message


def test_duplicate_json_key_is_an_error(write: Write) -> None:
    path = write("dup.json", '{"policies": {}, "policies": {}}')
    assert "duplicate key 'policies'" in str(_fails(path))


def test_workflows_and_top_level_tasks_together(write: Write) -> None:
    path = write("both.yaml", "tasks: []\nworkflows: {}\n")
    issue = _one(_fails(path))
    assert (issue.path, issue.line) == ("workflows", 2)
    assert "either `workflows:` or a single workflow's `tasks:`" in issue.message


# -- schema (pydantic) errors --------------------------------------------------


def test_unknown_field_suggests_the_right_one(write: Write) -> None:
    path = write("typo.yaml", "policies:\n  default:\n    max_paralelism: 2\n")
    issue = _one(_fails(path))
    assert (issue.path, issue.line) == ("policies.default.max_paralelism", 3)
    assert "unknown field; did you mean 'max_parallelism'?" in issue.message
    assert "expected one of: admission, budget, context, fail_fast" in issue.message
    assert str(_fails(path)).startswith(f"{path}:3: policies.default.max_paralelism: unknown")


def test_unknown_task_field(write: Write) -> None:
    text = "tasks:\n  - id: a\n    prompt: x\n    model: simulated\n    dependencies: [b]\n"
    issue = _one(_fails(write("wf.yaml", text)))
    # A single-workflow file reports paths as written in it.
    assert (issue.path, issue.line) == ("tasks[0].dependencies", 5)
    assert "expected one of: context, deps, id, inputs" in issue.message


def test_wrong_type_says_what_was_expected(write: Write) -> None:
    text = MULTI.replace("max_retries: 1", "max_retries: twice")
    issue = _one(_fails(write("runtime.yaml", text)))
    assert issue.path == "workflows.research.tasks[1].max_retries"
    assert issue.message.startswith("expected a valid integer")
    assert issue.message.endswith("got 'twice'")
    assert issue.line == MULTI.splitlines().index("        max_retries: 1") + 1


def test_out_of_range_value() -> None:
    issue = _one(_fails(_wf(_task("a", timeout=-1))))
    assert issue.path == "workflows.research.tasks[0].timeout"
    assert issue.message == "expected greater than 0, got -1"
    assert issue.line is None  # a mapping has no lines


def test_missing_required_field() -> None:
    issue = _one(_fails(_wf({"id": "a", "model": "simulated"})))
    assert (issue.path, issue.message) == (
        "workflows.research.tasks[0].prompt",
        "is required but missing",
    )


def test_a_workflow_needs_tasks() -> None:
    issue = _one(_fails(_wf()))
    assert (issue.path, issue.message) == ("workflows.research.tasks", "expected at least one task")


def test_inline_policy_errors_name_the_nested_field() -> None:
    issue = _one(_fails(_wf(_task("a"), policy={"budget": {"max_cost": "lots"}})))
    assert issue.path == "workflows.research.policy.budget.max_cost"
    assert "expected a valid decimal" in issue.message


def test_policy_must_be_a_name_or_a_mapping() -> None:
    issue = _one(_fails(_wf(_task("a"), policy=3)))
    assert issue.path == "workflows.research.policy"
    assert "expected a policy name or a mapping of policy fields" in issue.message


def test_bad_provider_name() -> None:
    issue = _one(_fails({"models": {"m": {"provider": "Open AI"}}}))
    assert issue.path == "models.m.provider"
    assert "got 'Open AI'" in issue.message


def test_odd_keys_are_quoted_in_paths() -> None:
    issue = _one(_fails({"prices": {"gpt-4.1": {"input": -1}}}))
    assert issue.path == 'prices["gpt-4.1"].input'


def test_several_errors_one_line_each(write: Write) -> None:
    text = "policies:\n  default: {max_parallelism: 0, fail_fast: maybe}\n"
    error = _fails(write("many.yaml", text))
    lines = str(error).splitlines()
    assert lines[0].endswith("many.yaml: 2 configuration errors:")
    assert sorted(_paths(error)) == [
        "policies.default.fail_fast",
        "policies.default.max_parallelism",
    ]
    assert all(":2: policies.default." in line for line in lines[1:])


# -- references between fields ------------------------------------------------


def test_unknown_dependency_names_the_field_and_the_known_ids(write: Write) -> None:
    text = MULTI.replace("deps: [research]", "deps: [reserch]")
    issue = _one(_fails(write("runtime.yaml", text)))
    assert issue.path == "workflows.research.tasks[1].deps"
    assert issue.message == (
        "task 'summary' depends on unknown task(s) 'reserch'; expected ids of this "
        "workflow's tasks: research, summary"
    )
    assert issue.line == MULTI.splitlines().index("        deps: [research]") + 1


def test_unknown_model_names_the_task_and_the_known_ids() -> None:
    config = {"models": {"fast": {"provider": "simulated"}}, **_wf(_task("draft", model="fsat"))}
    issue = _one(_fails(config))
    assert issue.path == "workflows.research.tasks[0].model"
    assert "task 'draft' uses unknown model id 'fsat' (did you mean 'fast'?)" in issue.message
    assert "expected one of the model registry's ids: fast, simulated" in issue.message


def test_unknown_default_model() -> None:
    issue = _one(_fails(_wf({"id": "a", "prompt": "x"}, model="gpt")))
    assert issue.path == "workflows.research.model"


def test_task_without_any_model() -> None:
    issue = _one(_fails(_wf({"id": "a", "prompt": "x"})))
    assert issue.path == "workflows.research.tasks[0].model"
    assert "names no model and the workflow has no default `model`" in issue.message


def test_unknown_policy_name() -> None:
    doc = {"policies": {"capped": {}}, **_wf(_task("a"), policy="caped")}
    issue = _one(_fails(doc))
    assert issue.path == "workflows.research.policy"
    assert "unknown policy 'caped'; expected a name from policies (capped)" in issue.message


def test_duplicate_and_self_dependent_tasks() -> None:
    error = _fails(_wf(_task("a"), _task("a"), _task("b", deps=["b"])))
    assert _paths(error) == ["workflows.research.tasks[1].id", "workflows.research.tasks[2].deps"]
    assert "duplicate task id 'a' (also tasks[0])" in str(error)
    assert "task 'b' depends on itself" in str(error)


def test_unknown_output_task() -> None:
    issue = _one(_fails(_wf(_task("a"), output="z")))
    assert issue.path == "workflows.research.output"
    assert "expected one of: a" in issue.message


def test_new_price_needs_input_and_output() -> None:
    issue = _one(_fails({"prices": {"my-model": {"input": 1}}}))
    assert issue.path == "prices.my-model"
    assert "required: input, output" in issue.message


def test_simulated_parameters_are_checked() -> None:
    error = _fails(
        {"models": {"s": {"provider": "simulated", "respones_tokens": 3, "latency": -1}}}
    )
    assert sorted(_paths(error)) == ["models.s.latency", "models.s.respones_tokens"]
    assert "not a parameter of the simulated provider" in str(error)
    assert "expected greater than or equal to 0, got -1" in str(error)


# -- secrets ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "params", "path", "variable"),
    [
        ("openai", {"api_key": "sk-1"}, "models.m.api_key", "OPENAI_API_KEY"),
        ("openai", {"openai_api_key": "sk-1"}, "models.m.openai_api_key", "OPENAI_API_KEY"),
        (
            "anthropic",
            {"anthropic_api_key": "x"},
            "models.m.anthropic_api_key",
            "ANTHROPIC_API_KEY",
        ),
        (
            "huggingface",
            {"huggingfacehub_api_token": "x"},
            "models.m.huggingfacehub_api_token",
            "HUGGINGFACE_API_KEY",
        ),
        (
            "bedrock",
            {"aws_secret_access_key": "x"},
            "models.m.aws_secret_access_key",
            "BEDROCK_API_KEY",
        ),
        (
            "openai",
            {"default_headers": {"Authorization": "Bearer x"}},
            "models.m.default_headers.Authorization",
            "OPENAI_API_KEY",
        ),
    ],
)
def test_secrets_in_a_file_are_refused(
    write: Write, provider: str, params: dict[str, Any], path: str, variable: str
) -> None:
    doc = {"models": {"m": {"provider": provider, "model": "x", **params}}}
    file = write("secret.json", json.dumps(doc))
    issue = _one(_fails(file))
    assert issue.path == path
    assert "secrets are not read from configuration files" in issue.message
    assert f"set the environment variable {variable} instead" in issue.message


def test_ordinary_parameters_are_not_secrets() -> None:
    config = load_config(
        {
            "models": {
                "m": {
                    "provider": "openai",
                    "base_url": "http://localhost:9/v1",
                    "max_tokens": 10,
                    "prompt_cache_key": "k",
                    "temperature": 0,
                }
            }
        }
    )
    assert config.models["m"].params["base_url"] == "http://localhost:9/v1"


# -- building -----------------------------------------------------------------


def test_graph_cycle_names_the_file_and_the_task(write: Write) -> None:
    text = (
        "tasks:\n"
        "  - {id: a, prompt: x, model: simulated}\n"
        "  - {id: b, prompt: y, model: simulated, deps: [c]}\n"
        "  - {id: c, prompt: z, model: simulated, deps: [b]}\n"
    )
    path = write("cycle.yaml", text)
    config = load_config(path)  # loading does not build the graph
    with pytest.raises(GraphValidationError) as info:
        config.build_workflow()
    assert str(info.value) == (
        f"{path}:3: tasks[1]: cycle in task graph: b -> c -> b "
        "(each task would have to run before the next)"
    )
    assert info.value.task_ids[:2] == ("b", "c")
    with pytest.raises(GraphValidationError, match="cycle in task graph"):
        config.check()
    with pytest.raises(GraphValidationError, match=r"cycle\.yaml:3: tasks\[1\]: cycle"):
        load_workflow(path)


def test_prompt_variable_nothing_provides(write: Write) -> None:
    text = MULTI.replace('"Summarise: {research}"', '"Summarise: {research} for {audience}"')
    config = load_config(write("runtime.yaml", text))
    with pytest.raises(GraphValidationError) as info:
        config.build_workflow("research")
    assert str(info.value).startswith(f"{config.source}:")
    assert "workflows.research.tasks[1]: task 'summary': its prompt uses {audience}" in str(
        info.value
    )


def test_unknown_or_ambiguous_workflow_name(write: Write) -> None:
    path = write("runtime.yaml", MULTI)
    with pytest.raises(
        ConfigurationError,
        match="defines several workflows \\(inline, research\\); name the one to run",
    ):
        load_workflow(path)
    with pytest.raises(
        ConfigurationError, match="no workflow 'reserch'; expected one of: inline, research"
    ):
        load_workflow(path, "reserch")
    with pytest.raises(ConfigurationError, match="defines no workflows"):
        load_config({}).build_workflow()


def test_unknown_policy_override(write: Write) -> None:
    config = load_config(write("runtime.yaml", MULTI))
    with pytest.raises(
        ConfigurationError, match="unknown policy 'fast'; expected: capped, default"
    ):
        config.build_workflow("research", policy_override="fast")
    with pytest.raises(ConfigFileError) as info:
        config.build_workflow("research", policy_override={"max_parallelism": 0})
    assert _paths(info.value) == ["policy_override.max_parallelism"]


def test_unknown_model_id_at_lookup() -> None:
    config = load_config({"models": {"fast": {"provider": "simulated"}}})
    with pytest.raises(
        ConfigurationError, match="unknown model id 'gpt'; expected one of: fast, simulated"
    ):
        config.model("gpt")
