"""Mistakes of a new user's first hour get a message that names the fix (issue 10, 14)."""

from __future__ import annotations

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
