"""``langchain-runtime estimate``: ranges that bracket the real run, and honest about it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.unit.cli._support import CHAIN, EXAMPLE, Cli, Write


def _within(low: Any, value: Any, high: Any) -> bool:
    return Decimal(str(low)) <= Decimal(str(value)) <= Decimal(str(high))


@pytest.mark.parametrize(
    "topic", ["x", "the long and winding history of tidal energy in Europe", "Eulen 🦉 {owls}"]
)
def test_ranges_bracket_the_actual_run(cli: Cli, topic: str) -> None:
    est = cli("estimate", EXAMPLE, "--input", f"topic={topic}", "--json")
    run = cli("run", EXAMPLE, "--input", f"topic={topic}", "--json")
    assert est.exit_code == 0, est.stderr
    assert run.exit_code == 0, run.stderr
    estimate, actual = est.json(), run.json()
    by_task = {t["task_id"]: t for t in estimate["tasks"]}
    assert set(by_task) == set(actual["tasks"])
    for task_id, result in actual["tasks"].items():
        e, usage = by_task[task_id], result["usage"]
        for field in ("input_tokens", "output_tokens", "total_tokens"):
            bound = e[field]
            assert bound["low"] <= usage[field] <= bound["high"], (task_id, field, bound, usage)
        cost = e["cost"]
        assert _within(cost["low"], result["cost"]["amount"], cost["high"]), task_id
    total, usage = estimate["total"], actual["usage"]
    for field in ("input_tokens", "output_tokens", "total_tokens"):
        assert total[field]["low"] <= usage[field] <= total[field]["high"], field
    assert _within(total["cost"]["low"], actual["cost"]["amount"], total["cost"]["high"])
    assert estimate["fits_budget"] is True


def test_first_task_prompt_is_exact_and_the_rest_estimated(cli: Cli) -> None:
    data = cli("estimate", EXAMPLE, "-i", "topic=owls", "--json").json()
    tasks = {t["task_id"]: t for t in data["tasks"]}
    assert tasks["research"]["prompt_exact"] is True
    assert tasks["research"]["fed_by"] == []
    assert tasks["draft_body"]["prompt_exact"] is False
    assert tasks["draft_body"]["fed_by"] == ["research", "outline"]  # `notes` reads research
    # writer has max_tokens: 200; the others take the budget's expected_output_tokens
    assert tasks["outline"]["output_tokens"] == {"low": 0, "high": 200}
    assert tasks["outline"]["output_basis"] == "max_tokens"
    assert tasks["research"]["output_tokens"] == {"low": 0, "high": 256}
    assert tasks["research"]["output_basis"] == "expected_output_tokens"
    # the research output bound flows into the outline's prompt bound
    assert tasks["outline"]["input_tokens"]["high"] >= 256
    assert data["counting"] == "tiktoken:cl100k_base"
    # retries (max_retries: 1 on the drafts) are reported apart from the ranges
    assert (
        data["total"]["with_retries"]["total_tokens_high"] > data["total"]["total_tokens"]["high"]
    )


def test_table_says_what_is_exact_and_the_budget_verdict(cli: Cli) -> None:
    out = cli("estimate", EXAMPLE, "-i", "topic=owls")
    assert out.exit_code == 0, out.stderr
    text = out.stdout
    assert "no model is called" in text
    assert "= prompt exact" in text and "outline ≈ (from research)" in text
    assert "prompt text counted exactly (tiktoken:cl100k_base)" in text
    assert "Not in the ranges: retries" in text
    assert "Budget $0.01 and 20,000 tokens: the upper bound" in text and "fits" in text


def test_budget_that_the_upper_bound_exceeds(cli: Cli) -> None:
    out = cli("estimate", EXAMPLE, "-i", "topic=owls", "--budget", "0.0003")
    assert out.exit_code == 0, out.stderr
    assert "does not fit: the run may stop before its end" in out.stdout
    tiny = cli("estimate", EXAMPLE, "-i", "topic=owls", "--budget", "0.0000001", "--json")
    assert tiny.json()["fits_budget"] is False
    assert tiny.json()["lower_bound_fits_budget"] is False


def test_without_a_budget_output_is_bounded_by_the_catalog(cli: Cli, write: Write) -> None:
    text = CHAIN.replace("  budget: {max_cost: 0.01, expected_output_tokens: 64}\n", "")
    out = cli("estimate", write("free.yaml", text), "-i", "topic=x", "--json")
    data = out.json()
    assert data["budget"] is None and data["fits_budget"] is None
    assert data["tasks"][0]["output_tokens"]["high"] == 16384  # simulated's catalog max
    assert data["tasks"][0]["output_basis"] == "catalog max output"
    shown = cli("estimate", write("free.yaml", text), "-i", "topic=x")
    assert "No budget: nothing stops this run early" in shown.stdout


def test_unpriced_model_and_unbounded_output_are_said(cli: Cli, write: Write) -> None:
    wf = write(
        "mystery.yaml",
        """\
models:
  mine: {provider: simulated, model: my-finetune}
tasks:
  - {id: a, prompt: "Hi {name}", model: mine}
  - id: b
    model: mine
    deps: [a]
    prompt: "More {a}"
    context: {max_tokens: 50, strategy: summarize}
""",
    )
    data = cli("estimate", wf, "-i", "name=Ada", "--json").json()
    a, b = data["tasks"]
    assert a["cost"] == {"low": None, "high": None} and a["priced_as"] is None
    assert any("has no price in the catalog" in n for n in a["notes"])
    assert a["output_tokens"]["high"] is None and a["output_basis"] == "unbounded"
    # b's context policy caps what a feeds into it, even though a is unbounded
    assert b["input_tokens"]["high"] is not None and b["input_tokens"]["high"] < 100
    assert any("summarizer calls are not included" in n for n in b["notes"])
    assert data["total"]["total_tokens"]["high"] is None


def test_missing_input_exits_2(cli: Cli) -> None:
    out = cli("estimate", EXAMPLE)
    assert out.exit_code == 2
    assert out.stderr == (
        "error: the run input is missing 'topic' (given: none); pass --input topic=...\n"
    )


def test_no_model_is_built_or_called(cli: Cli, write: Write) -> None:
    wf = write(
        "openai.yaml",
        """\
models:
  smart: {provider: openai, model: gpt-4o-mini, max_tokens: 300}
policy: {budget: {max_cost: 1}}
tasks:
  - {id: a, prompt: "Hi {name}", model: smart}
""",
    )
    out = cli("estimate", wf, "-i", "name=Ada", "--json", env={"OPENAI_API_KEY": ""})
    assert out.exit_code == 0, out.stderr
    data = out.json()
    assert data["tasks"][0]["priced_as"] == "gpt-4o-mini"
    assert data["tasks"][0]["output_tokens"]["high"] == 300
    # gpt-4o-mini wants o200k_base, which is not available offline: said, not hidden
    assert any("approximate" in n for n in data["notes"])


ROUTED = """\
models:
  m: {provider: simulated, response_tokens: 30, max_tokens: 40}
policy: {budget: {max_cost: 1}}
model: m
tasks:
  - {id: a, prompt: "Notes on {topic}", memory_key: notes}
  - id: b
    deps: [a]
    inputs: {n: "$memory.notes", t: "$input.topic"}
    prompt: "Use {n} twice: {n}. Topic: {t}"
    context: {max_tokens: 100, strategy: truncate}
"""


def _bracketed(cli: Cli, wf: Path, *args: str) -> None:
    estimate = cli("estimate", wf, *args, "--json").json()
    run = cli("run", wf, *args, "--json").json()
    for task in estimate["tasks"]:
        usage = run["tasks"][task["task_id"]]["usage"]
        for field in ("input_tokens", "output_tokens"):
            assert task[field]["low"] <= usage[field] <= task[field]["high"], (task, field)


def test_memory_and_input_sources_are_bounded(cli: Cli, write: Write) -> None:
    data = cli("estimate", write("routed.yaml", ROUTED), "-i", "topic=owls", "--json").json()
    a, b = data["tasks"]
    assert b["fed_by"] == ["a"]  # the memory key's writer
    assert b["input_tokens"]["high"] >= 2 * a["output_tokens"]["high"]  # {n} appears twice
    assert any("may shorten {t}" in note for note in b["notes"])


def test_input_source_and_repeated_variable_bracket_the_run(cli: Cli, write: Write) -> None:
    text = ROUTED.replace('n: "$memory.notes"', "n: a")
    _bracketed(cli, write("routed.yaml", text), "-i", "topic=owls")


def test_memory_source_brackets_the_run(cli: Cli, write: Write) -> None:
    _bracketed(cli, write("routed.yaml", ROUTED), "-i", "topic=owls")
