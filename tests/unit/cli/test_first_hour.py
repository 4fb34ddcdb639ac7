"""Mistakes of a new user's first hour get a message that names the fix (issue 10, 14)."""

from __future__ import annotations

import re

import pytest

from tests.unit.cli._support import CHAIN, EXAMPLE, Cli, Write


def test_a_mistyped_provider_is_named_with_the_likely_one(cli: Cli, write: Write) -> None:
    path = write("typo.yaml", CHAIN.replace("provider: simulated", "provider: simulatd"))
    out = cli("validate", path)
    assert out.exit_code == 2
    assert "models.fast.provider: unknown provider 'simulatd'; did you mean 'simulated'?" in (
        out.stderr
    )
    assert "price" not in out.stderr  # it used to blame a missing price
    assert "did you mean 'simulated'" in cli("run", path, "-i", "topic=x").stderr


@pytest.mark.parametrize(
    ("line", "typo", "field", "meant"),
    [
        ("    deps: [a]", "    dependencies: [a]", "dependencies", "deps"),
        ('    prompt: "Repeat: {a}"', '    promt: "Repeat: {a}"', "promt", "prompt"),
    ],
)
def test_an_unknown_field_suggests_the_field(
    cli: Cli, write: Write, line: str, typo: str, field: str, meant: str
) -> None:
    out = cli("validate", write("field.yaml", CHAIN.replace(line, typo)))
    assert out.exit_code == 2
    assert f"tasks[1].{field}: unknown field; did you mean {meant!r}?" in out.stderr


def test_a_missing_price_points_to_the_yaml_prices_section(cli: Cli, write: Write) -> None:
    text = (
        "models:\n  m: {provider: simulated, model: my-unpriced-model}\nmodel: m\n"
        "policy:\n  budget: {max_cost: 0.01}\ntasks:\n  - id: a\n    prompt: hi\n"
    )
    out = cli("run", write("price.yaml", text))
    assert out.exit_code == 2
    assert "add it under `prices:`, e.g. prices: {my-unpriced-model:" in out.stderr
    assert "catalog.add" not in out.stderr


def test_an_input_the_workflow_does_not_use_is_warned_about(cli: Cli) -> None:
    out = cli("run", EXAMPLE, "-i", "topic=owls", "-i", "topc=owls", "--json")
    assert out.exit_code == 0, out.stderr
    assert "warning: input 'topc' is not used by the workflow (its inputs: topic)" in out.stderr
    quiet = cli("run", EXAMPLE, "-i", "topic=owls", "--json")
    assert "warning" not in quiet.stderr


# -- make demo (issue 10, 12) ------------------------------------------------------------------
def _durations(text: str) -> dict[str, float]:
    found = re.findall(r"^│ (\w+)\s+│ completed │\s+([0-9.]+)s │", text, re.M)
    return {task: float(seconds) for task, seconds in found}


def test_the_demo_shows_parallel_drafts_in_file_order_and_labels_placeholders(cli: Cli) -> None:
    out = cli("run", EXAMPLE, "--input", "topic=barn owls", env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.stderr
    text = out.stdout
    durations = _durations(text)
    assert list(durations) == [
        "research", "outline", "draft_intro", "draft_body", "draft_conclusion", "review",
    ]  # fmt: skip
    assert all(seconds > 0 for seconds in durations.values())  # the example's latency
    wall = float(re.search(r"^completed · ([0-9.]+)s ·", text, re.M).group(1))  # type: ignore[union-attr]
    assert wall < sum(durations.values())  # the drafts ran side by side
    assert "note" not in text.split("\n", 3)[2]  # no empty note column
    assert text.count("(simulated: placeholder text)") == 6
    outputs = text.split("└")[-1].splitlines()
    assert all(len(line) <= 80 for line in outputs)
    assert "--full shows them whole" in text
    full = cli("run", EXAMPLE, "--input", "topic=barn owls", "--full", env={"COLUMNS": "80"})
    assert len(full.stdout.splitlines()) > len(text.splitlines()) + 6
