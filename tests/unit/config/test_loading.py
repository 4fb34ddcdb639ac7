"""Loading valid configurations and running the workflows they describe, offline."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

import langchain_runtime.config as config_pkg
from langchain_runtime import ContextPolicy, Orchestrator, RunPolicy, RunResult, RunState
from langchain_runtime.config import RuntimeConfig, load_config, load_workflow
from langchain_runtime.testing import SimulatedChatModel
from tests.unit.config._samples import EXAMPLE, MULTI

Write = Callable[[str, str], Path]


def test_yaml_config_loads_every_section(write: Write) -> None:
    config = load_config(write("runtime.yaml", MULTI))

    assert config.source.endswith("runtime.yaml")
    assert sorted(config.models) == ["fast", "slow"]
    assert config.models["fast"].params == {"response_tokens": 12}
    assert config.prices["my-finetune"].input == Decimal("0.3")
    assert sorted(config.workflows) == ["inline", "research"]
    assert config.workflows["inline"].tasks[1].deps == ("a",)

    capped = config.policy("capped")
    assert isinstance(capped, RunPolicy)
    assert capped.budget is not None and capped.budget.max_cost == Decimal("0.05")
    assert capped.context == ContextPolicy(max_tokens=2000, strategy="truncate", keep="tail")
    assert config.policy().max_parallelism == 2
    assert config.workflow_policy("research") == capped
    assert config.workflow_policy("inline").scheduling == "eager"


def test_yaml_and_json_round_trip(write: Write) -> None:
    from_yaml = load_config(write("runtime.yaml", MULTI))
    dumped = from_yaml.spec.model_dump(mode="json", exclude_none=True)
    from_json = load_config(write("runtime.json", json.dumps(dumped, indent=2)))

    assert from_json.spec == from_yaml.spec
    assert load_config(dumped).spec == from_yaml.spec
    # The same document runs the same way, whichever format it came in.
    out_yaml = from_yaml.build_workflow("research").invoke({"topic": "owls"})
    out_json = from_json.build_workflow("research").invoke({"topic": "owls"})
    assert {k: v.content for k, v in out_yaml.outputs.items()} == {
        k: v.content for k, v in out_json.outputs.items()
    }
    assert out_yaml.usage == out_json.usage


def test_build_and_invoke_on_the_simulated_model(write: Write) -> None:
    config = load_config(write("runtime.yaml", MULTI))
    orch = config.build_workflow("research")

    assert isinstance(orch, Orchestrator)
    assert orch.name == "research"
    assert orch.policy == config.policy("capped")
    assert orch.graph["summary"].deps == ("research",)
    assert orch.graph["summary"].timeout == 5
    assert orch.graph["summary"].max_retries == 1
    assert orch.graph["summary"].metadata == {"stage": "summary"}

    result = orch.invoke({"topic": "x"})
    assert isinstance(result, RunResult)
    assert result.state is RunState.COMPLETED
    assert result.tasks["research"].usage.output_tokens == 12
    assert result.memory["summary"] == result["summary"]


def test_inline_policy_output_and_inputs(write: Write) -> None:
    orch = load_config(write("runtime.yaml", MULTI)).build_workflow("inline")

    assert orch.policy.max_parallelism == 1
    assert orch.output == "b"
    answer = orch.invoke({"word": "hello"})
    assert answer.content  # output="b": the task's message, not a RunResult


def test_models_are_built_lazily_and_reused(write: Write) -> None:
    config = load_config(write("runtime.yaml", MULTI))
    model = config.model("slow")

    assert isinstance(model, SimulatedChatModel)
    assert (model.model_name, model.latency, model.max_tokens) == ("simulated", 0.01, 30)
    assert config.model("slow") is model
    # `simulated` works without a registry entry.
    default = config.model("simulated")
    assert isinstance(default, SimulatedChatModel) and default.model_name == "simulated"


def test_prices_are_applied_to_the_catalog(write: Write) -> None:
    config = load_config(write("runtime.yaml", MULTI))
    catalog = config.catalog()

    finetune = catalog.get("my-finetune")
    assert (finetune.input_price, finetune.output_price) == (Decimal("0.3"), Decimal("1.2"))
    assert finetune.cached_input_price == Decimal("0.1")
    assert finetune.role == "fast"
    # An override of a known model changes only the columns it gives.
    assert catalog.get("simulated").output_price == Decimal("0.5")
    assert catalog.get("simulated").input_price == Decimal("0.10")
    assert config.build_workflow("research").catalog is catalog


def test_policy_override(write: Write) -> None:
    config = load_config(write("runtime.yaml", MULTI))

    assert config.build_workflow("research", policy_override="default").policy.max_parallelism == 2
    by_dict = config.build_workflow("research", policy_override={"max_parallelism": 7})
    assert by_dict.policy.max_parallelism == 7
    explicit = RunPolicy(timeout=3)
    assert config.build_workflow("research", policy_override=explicit).policy is explicit


def test_single_workflow_file(write: Write) -> None:
    path = write(
        "hello.yml",
        """
        tasks:
          - id: greet
            prompt: "Greet {name}"
            model: simulated
        policy: {max_parallelism: 1}
        """.replace("\n        ", "\n"),
    )
    config = load_config(path)

    assert list(config.workflows) == ["hello"]  # named after the file
    orch = load_workflow(path)
    assert orch.policy.max_parallelism == 1
    assert orch.invoke({"name": "Ada"}).state is RunState.COMPLETED


def test_single_workflow_mapping_with_a_name() -> None:
    config = load_config(
        {
            "name": "w",
            "model": "m",
            "models": {"m": {"provider": "simulated"}},
            "tasks": [{"id": "a", "prompt": "hi"}],
        }
    )
    assert list(config.workflows) == ["w"]
    assert config.source == "<config>"
    assert config.build_workflow().invoke({}).ok


def test_named_workflow_from_a_multi_workflow_file(write: Write) -> None:
    orch = load_workflow(write("runtime.yaml", MULTI), "research")
    assert sorted(orch.graph.tasks) == ["research", "summary"]


def test_constructor_from_a_spec(write: Write) -> None:
    spec = load_config(write("runtime.yaml", MULTI)).spec
    config = RuntimeConfig(spec, source="inline")
    assert config.build_workflow("research").invoke({"topic": "t"}).ok


def test_check_validates_graphs_without_building_models(write: Write) -> None:
    text = MULTI.replace("provider: simulated\n    response_tokens: 12", "provider: nowhere")
    config = load_config(write("runtime.yaml", text))
    config.check()  # no provider package is needed for `nowhere`
    config.check("research")


def test_example_loads_and_runs_offline() -> None:
    config = load_config(EXAMPLE)
    workflow = config.workflow()
    assert [t.id for t in workflow.tasks] == [
        "research",
        "outline",
        "draft_intro",
        "draft_body",
        "draft_conclusion",
        "review",
    ]
    policy = config.workflow_policy()
    assert policy.budget is not None and policy.budget.max_cost is not None

    result = load_workflow(EXAMPLE).invoke({"topic": "tidal energy"})

    assert result.state is RunState.COMPLETED
    assert sorted(result.outputs) == sorted(t.id for t in workflow.tasks)
    drafts = [result.tasks[t] for t in ("draft_body", "draft_conclusion", "draft_intro")]
    # The fan-out ran as one batch, after the outline's.
    assert len({d.batch for d in drafts}) == 1
    assert drafts[0].batch == (result.tasks["outline"].batch or 0) + 1
    assert result.cost.amount <= policy.budget.max_cost
    assert result.memory["review"] == result["review"]


def test_example_budget_stops_the_run_when_lowered() -> None:
    result = load_workflow(EXAMPLE, policy_override={"budget": {"max_cost": "0.0001"}}).invoke(
        {"topic": "tidal energy"}
    )
    assert result.state is RunState.BUDGET_EXCEEDED
    assert result.cost.amount <= Decimal("0.0001")


def test_public_names() -> None:
    for name in config_pkg.__all__:
        assert hasattr(config_pkg, name), name


def test_import_loads_no_provider_package() -> None:
    code = (
        "import sys, langchain_runtime.config; "
        "print([m for m in ('langchain', 'langchain_openai', 'langchain_anthropic', 'openai',"
        " 'anthropic') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("deps", ["a", ["a"]])
def test_deps_accepts_one_id_or_a_list(deps: object) -> None:
    config = load_config(
        {
            "tasks": [
                {"id": "a", "prompt": "x", "model": "simulated"},
                {"id": "b", "prompt": "y", "model": "simulated", "deps": deps},
            ]
        }
    )
    assert config.workflow().tasks[1].deps == ("a",)


def test_yaml_anchors_and_merge_keys(write: Write) -> None:
    text = (
        "models:\n"
        "  base: &base {provider: simulated, response_tokens: 5}\n"
        "  fast:\n"
        "    <<: *base\n"
        "    response_tokens: 3\n"
        "tasks:\n"
        "  - {id: a, prompt: 'hi {topic}', model: fast}\n"
    )
    config = load_config(write("anchors.yaml", text))
    assert config.models["fast"].params == {"response_tokens": 3}
    assert config.build_workflow().invoke({"topic": "x"}).ok
