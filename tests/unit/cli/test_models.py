"""``langchain-runtime models``: the catalog's prices, and a file's registry."""

from __future__ import annotations

from tests.unit.cli._support import EXAMPLE, Cli, Write


def test_catalog_table_with_prices_per_million(cli: Cli) -> None:
    out = cli("models")
    assert out.exit_code == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("gpt-4o-mini "))
    assert row.split() == ["gpt-4o-mini", "openai", "fast", "0.15", "0.075", "0.6", "128k"]
    assert "per 1M tokens" in out.stdout
    assert "Source:" in out.stdout and "date:" in out.stdout


def test_json_lists_every_model_with_string_prices(cli: Cli) -> None:
    data = cli("models", "--json").json()
    assert data["unit"] == "per 1M tokens" and data["currency"] == "USD"
    by_id = {m["id"]: m for m in data["models"]}
    assert by_id["gpt-4o"]["output"] == "10"
    assert by_id["simulated"]["provider"] == "simulated"
    assert "registry" not in data


def test_provider_filter(cli: Cli) -> None:
    data = cli("models", "--provider", "openai", "--json").json()
    assert data["models"] and {m["provider"] for m in data["models"]} == {"openai"}


def test_config_adds_its_prices_and_registry(cli: Cli, write: Write) -> None:
    wf = write(
        "cfg.yaml",
        """\
models:
  mine: {provider: simulated, model: my-finetune, response_tokens: 5}
  other: {provider: simulated, model: nobody-prices-this}
prices:
  my-finetune: {input: 0.3, output: 1.2, role: fast}
tasks:
  - {id: a, prompt: "Hi", model: mine}
""",
    )
    data = cli("models", "--config", wf, "--json").json()
    by_id = {m["id"]: m for m in data["models"]}
    assert by_id["my-finetune"]["input"] == "0.3"
    assert data["registry"]["mine"]["priced_as"] == "my-finetune"
    assert data["registry"]["mine"]["parameters"] == {"response_tokens": 5}
    assert data["registry"]["other"]["priced_as"] is None
    table = cli("models", "--config", wf)
    assert "Model registry of" in table.stdout and "no price" in table.stdout


def test_example_registry(cli: Cli) -> None:
    out = cli("models", "--config", EXAMPLE)
    assert out.exit_code == 0
    for model_id in ("researcher", "writer", "reviewer"):
        assert model_id in out.stdout


def test_bad_config_exits_2(cli: Cli, write: Write) -> None:
    out = cli("models", "--config", write("bad.yaml", "models: [1]\n"))
    assert out.exit_code == 2
    assert out.stderr.startswith("error: ") and "bad.yaml:1: models:" in out.stderr
