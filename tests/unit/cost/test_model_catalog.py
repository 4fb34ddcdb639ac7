"""ModelCatalog: the bundled table, overrides (ours and LiteLLM's format), name resolution."""

from __future__ import annotations

import gzip
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from langchain_runtime.cost import CostCalculator, ModelCatalog, ModelInfo
from langchain_runtime.domain import Usage
from langchain_runtime.errors import ConfigurationError

D = Decimal
VERTEX = "vertex_ai-language-models"

# shared/data/model-prices.md: input, cached input, cache write, output, max in, max out.
PRICES: dict[str, tuple[str, str, str | None, str, int, int, str]] = {
    "gpt-4o": ("2.50", "1.25", None, "10.00", 128_000, 16_384, "openai"),
    "gpt-4o-mini": ("0.15", "0.075", None, "0.60", 128_000, 16_384, "openai"),
    "gpt-4.1": ("2.00", "0.50", None, "8.00", 1_047_576, 32_768, "openai"),
    "gpt-4.1-mini": ("0.40", "0.10", None, "1.60", 1_047_576, 32_768, "openai"),
    "gpt-4.1-nano": ("0.10", "0.025", None, "0.40", 1_047_576, 32_768, "openai"),
    "o3": ("2.00", "0.50", None, "8.00", 200_000, 100_000, "openai"),
    "o4-mini": ("1.10", "0.275", None, "4.40", 200_000, 100_000, "openai"),
    "gpt-5": ("1.25", "0.125", None, "10.00", 272_000, 128_000, "openai"),
    "gpt-5-mini": ("0.25", "0.025", None, "2.00", 272_000, 128_000, "openai"),
    "gpt-5-nano": ("0.05", "0.005", None, "0.40", 272_000, 128_000, "openai"),
    "gpt-5.1": ("1.25", "0.125", None, "10.00", 272_000, 128_000, "openai"),
    "gpt-5.2": ("1.75", "0.175", None, "14.00", 272_000, 128_000, "openai"),
    "claude-sonnet-4-20250514": ("3.00", "0.30", "3.75", "15.00", 1_000_000, 64_000, "anthropic"),
    "claude-sonnet-4-5": ("3.00", "0.30", "3.75", "15.00", 200_000, 64_000, "anthropic"),
    "claude-sonnet-4-6": ("3.00", "0.30", "3.75", "15.00", 1_000_000, 64_000, "anthropic"),
    "claude-opus-4-1": ("15.00", "1.50", "18.75", "75.00", 200_000, 32_000, "anthropic"),
    "claude-opus-4-20250514": ("15.00", "1.50", "18.75", "75.00", 200_000, 32_000, "anthropic"),
    "claude-opus-4-5": ("5.00", "0.50", "6.25", "25.00", 200_000, 64_000, "anthropic"),
    "claude-opus-4-6": ("5.00", "0.50", "6.25", "25.00", 1_000_000, 128_000, "anthropic"),
    "claude-haiku-4-5": ("1.00", "0.10", "1.25", "5.00", 200_000, 64_000, "anthropic"),
    "claude-3-5-haiku-20241022": ("0.80", "0.08", "1.00", "4.00", 200_000, 8_192, "anthropic"),
    "gemini-2.5-pro": ("1.25", "0.125", None, "10.00", 1_048_576, 65_535, VERTEX),
    "gemini-2.5-flash": ("0.30", "0.03", None, "2.50", 1_048_576, 65_535, VERTEX),
    "gemini-2.5-flash-lite": ("0.10", "0.01", None, "0.40", 1_048_576, 65_535, VERTEX),
}


@pytest.fixture
def catalog() -> ModelCatalog:
    return ModelCatalog.default()


@pytest.mark.parametrize("model", sorted(PRICES))
def test_bundled_prices_match_the_source_table(catalog: ModelCatalog, model: str) -> None:
    inp, cached, write, out, max_in, max_out, provider = PRICES[model]
    info = catalog.get(model)
    assert info.id == model
    assert info.input_price == D(inp)
    assert info.cached_input_price == D(cached)
    assert info.cache_write_price == (D(write) if write else None)
    # Anthropic bills a 1-hour cache write at 2x the input price; others have none.
    assert info.cache_write_1h_price == (2 * D(inp) if provider == "anthropic" else None)
    assert info.output_price == D(out)
    assert (info.context_window, info.max_output_tokens) == (max_in, max_out)
    assert info.provider == provider
    assert info.role in ("flagship", "balanced", "fast")
    assert all(isinstance(p, Decimal) for p in info.rates(0))


def test_bundled_table_records_source_and_date_and_prices_simulated(
    catalog: ModelCatalog,
) -> None:
    assert set(PRICES) | {"simulated"} == {m.id for m in catalog}
    assert "litellm" in (catalog.source or "").lower()
    assert catalog.date == "2026-07-24"
    sim = catalog.get("simulated")
    assert (sim.input_price, sim.output_price) == (D("0.10"), D("0.40"))
    assert (sim.provider, sim.role) == ("simulated", "fast")


def test_long_context_tiers_are_bundled(catalog: ModelCatalog) -> None:
    for model in ("claude-sonnet-4-20250514", "claude-sonnet-4-5"):
        tier = catalog.get(model).long_context
        assert tier is not None and tier.threshold == 200_000
        assert (tier.input_price, tier.output_price) == (D("6.00"), D("22.50"))
        assert (tier.cached_input_price, tier.cache_write_price) == (D("0.60"), D("7.50"))
        assert tier.cache_write_1h_price == D("12.00")
    gemini = catalog.get("gemini-2.5-pro").long_context
    assert gemini is not None
    assert (gemini.threshold, gemini.input_price, gemini.output_price) == (
        200_000,
        D("2.50"),
        D("15.00"),
    )


@pytest.mark.parametrize(
    ("name", "resolved"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("openai:gpt-4o", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("azure/gpt-4.1-mini", "gpt-4.1-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai:gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("o3-2025-04-16", "o3"),
        ("gpt-5-2025-08-07", "gpt-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("anthropic:claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-sonnet-4-0", "claude-sonnet-4-20250514"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku-20241022"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("bedrock/anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1"),
        ("gemini/gemini-2.5-pro", "gemini-2.5-pro"),
        ("google_genai:gemini-2.5-flash", "gemini-2.5-flash"),
        ("models/gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("simulated", "simulated"),
    ],
)
def test_names_resolve(catalog: ModelCatalog, name: str, resolved: str) -> None:
    assert catalog.resolve(name) == resolved
    assert catalog.get(name).id == resolved
    assert name in catalog


@pytest.mark.parametrize(
    "name",
    [
        "gpt-4o-mini-xyz",  # not a snapshot of gpt-4o-mini, and surely not gpt-4o
        "gpt-4o-audio-preview",
        "o3-mini",  # a different, cheaper model than o3
        "o3-pro",
        "gpt-5.1-codex",
        "claude-sonnet-4-7",
        "gpt-4",
        "llama-3-70b",
        "",
    ],
)
def test_unsafe_or_unknown_names_do_not_resolve(catalog: ModelCatalog, name: str) -> None:
    assert catalog.find(name) is None
    assert name not in catalog


def test_unknown_model_error_names_it_and_says_how_to_add_a_price(
    catalog: ModelCatalog,
) -> None:
    with pytest.raises(ConfigurationError) as err:
        catalog.get("gpt-4o-mini-xyz")
    message = str(err.value)
    assert "'gpt-4o-mini-xyz'" in message
    assert "catalog.add(" in message
    assert "ModelCatalog.load(" in message
    assert "prices:" in message
    assert "gpt-4o-mini" in message  # a close name is suggested
    assert isinstance(err.value, ValueError)


def test_add_and_partial_override(catalog: ModelCatalog) -> None:
    added = catalog.add("acme-1", input=1, output="2.5", provider="acme", role="fast")
    assert catalog.get("acme:acme-1") is added
    assert added.output_price == D("2.5")
    changed = catalog.add("gpt-4o", cached_input=1.0)
    assert changed.cached_input_price == D("1.0")
    assert changed.input_price == D("2.50") and changed.role == "flagship"
    via_alias = catalog.add("claude-sonnet-4-0", output=16)
    assert via_alias.id == "claude-sonnet-4-20250514" and via_alias.output_price == 16
    assert ModelCatalog.default().get("gpt-4o").cached_input_price == D("1.25")  # a copy


def test_adding_a_model_needs_input_and_output_prices() -> None:
    with pytest.raises(ConfigurationError, match=r"'new-model'.*input"):
        ModelCatalog().add("new-model", output=1)
    with pytest.raises(ConfigurationError, match=r"'m'.*inptu"):
        ModelCatalog().update({"m": {"inptu": 1, "output": 2}})
    with pytest.raises(ConfigurationError, match="greater than or equal to 0"):
        ModelCatalog().add("m", input=-1, output=1)
    with pytest.raises(ConfigurationError, match="must be a mapping"):
        ModelCatalog().update({"m": 3})


def test_yaml_overrides_on_top_of_the_default_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "prices:\n"
        "  gpt-4o: {cached_input: 1.00}\n"
        "  my-model:\n"
        "    input: 0.3\n"
        "    output: 1.2\n"
        "    cache_read: 0.03\n"
        "    long_context: {threshold: 100000, input: 0.6, output: 2.4}\n"
        "    role: balanced\n"
    )
    catalog = ModelCatalog.load(path)
    assert catalog.get("gpt-4o").cached_input_price == D("1.00")
    mine = catalog.get("my-model")
    assert (mine.input_price, mine.output_price, mine.cached_input_price) == (
        D("0.3"),
        D("1.2"),
        D("0.03"),
    )
    assert mine.long_context is not None and mine.long_context.threshold == 100_000
    assert catalog.get("o3").output_price == D("8.00")  # untouched
    # Without the default table, a partial entry has nothing to override.
    with pytest.raises(ConfigurationError, match=r"'gpt-4o': input: Field required"):
        ModelCatalog.load(path, include_default=False)


def test_our_json_format_with_source_and_date(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "source": "vendor price page",
                "date": "2026-11-01",
                "models": {"x-1": {"input": 0.1, "output": 0.2, "aliases": ["x-one"]}},
            }
        )
    )
    catalog = ModelCatalog.load(path)
    assert (catalog.source, catalog.date) == ("vendor price page", "2026-11-01")
    assert catalog.get("x-one").id == "x-1"
    assert catalog.get("x-1").input_price == D("0.1")


LITELLM = {
    "sample_spec": {
        "max_tokens": "LEGACY parameter",
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
        "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
        "mode": "one of chat, embedding, completion",
    },
    "gpt-4o": {
        "max_tokens": 16384,
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "input_cost_per_token": 2.5e-06,
        "output_cost_per_token": 1e-05,
        "cache_read_input_token_cost": 1.25e-06,
        "litellm_provider": "openai",
        "mode": "chat",
    },
    "gemini/gemini-2.5-pro": {
        "max_input_tokens": 1048576,
        "max_output_tokens": 65535,
        "input_cost_per_token": 1.25e-06,
        "input_cost_per_token_above_200k_tokens": 2.5e-06,
        "output_cost_per_token": 1e-05,
        "output_cost_per_token_above_200k_tokens": 1.5e-05,
        "cache_read_input_token_cost": 3.125e-07,
        "litellm_provider": "gemini",
        "mode": "chat",
    },
    "claude-new-1": {
        "max_input_tokens": 200000,
        "max_output_tokens": 64000,
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "cache_read_input_token_cost": 3e-07,
        "cache_creation_input_token_cost": 3.75e-06,
        "litellm_provider": "anthropic",
        "mode": "chat",
    },
    "dall-e-3": {"output_cost_per_image": 0.04, "litellm_provider": "openai", "mode": "image"},
}


def test_litellm_file_as_is(tmp_path: Path) -> None:
    path = tmp_path / "model_prices_and_context_window.json"
    path.write_text(json.dumps(LITELLM))
    catalog = ModelCatalog.load(path, include_default=False)
    assert sorted(m.id for m in catalog) == ["claude-new-1", "gemini/gemini-2.5-pro", "gpt-4o"]
    gpt = catalog.get("gpt-4o")
    assert (gpt.input_price, gpt.output_price, gpt.cached_input_price) == (
        D("2.5"),
        D("10"),
        D("1.25"),
    )
    assert (gpt.context_window, gpt.max_output_tokens, gpt.provider) == (128000, 16384, "openai")
    claude = catalog.get("claude-new-1")
    assert claude.cache_write_price == D("3.75") and claude.cached_input_price == D("0.3")
    gemini = catalog.get("gemini:gemini-2.5-pro")
    assert gemini.id == "gemini/gemini-2.5-pro" and gemini.provider == "gemini"
    assert gemini.cached_input_price == D("0.3125")
    tier = gemini.long_context
    assert tier is not None
    assert (tier.threshold, tier.input_price, tier.output_price) == (200_000, D("2.5"), D("15"))
    assert catalog.find("dall-e-3") is None and catalog.find("sample_spec") is None


def test_a_litellm_entry_replaces_the_bundled_entry_whole() -> None:
    catalog = ModelCatalog.default()
    catalog.update({"gpt-4o": {**LITELLM["gpt-4o"], "input_cost_per_token": 3e-06}})
    info = catalog.get("gpt-4o")
    assert info.input_price == D("3") and info.role == "flagship"  # our role is kept
    # The bundled claude-sonnet-4-5 has an above-200k tier; a file entry without one
    # drops it: a 300k-token call is priced at the base rates.
    before = ModelCatalog.default()
    call = Usage(input_tokens=300_000, output_tokens=1_000)
    assert CostCalculator(before).cost("claude-sonnet-4-5", call).amount == D("1.8225")
    claude = {
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "cache_read_input_token_cost": 3e-07,
        "cache_creation_input_token_cost": 3.75e-06,
        "cache_creation_input_token_cost_above_1hr": 6e-06,
        "litellm_provider": "anthropic",
        "max_input_tokens": 200000,
        "mode": "chat",
    }
    catalog.update({"claude-sonnet-4-5": claude})
    info = catalog.get("claude-sonnet-4-5")
    assert info.long_context is None and info.max_output_tokens is None
    assert info.aliases == ("claude-sonnet-4-5-20250929",) and info.role == "balanced"
    assert CostCalculator(catalog).cost("claude-sonnet-4-5", call).amount == D("0.915")


def test_a_full_entry_of_ours_replaces_a_model_and_a_partial_one_changes_columns() -> None:
    catalog = ModelCatalog.default()
    catalog.update({"prices": {"claude-sonnet-4-5": {"input": 3, "output": 15}}})
    info = catalog.get("claude-sonnet-4-5")
    assert info.long_context is None and info.cache_write_price is None
    assert info.role == "balanced"
    catalog.update({"prices": {"claude-sonnet-4-0": {"cache_write_1h": 7}}})  # via an alias
    partial = catalog.get("claude-sonnet-4-20250514")
    assert partial.cache_write_1h_price == D(7) and partial.long_context is not None


def test_litellm_aliases_and_non_model_entries() -> None:
    data = {
        "claude-next-latest": {"alias_of": "claude-next-1"},  # before its target
        "fallback_generalizations": {"rules": [{"name": "r", "pattern": "^claude-"}]},
        "claude-next-1": {
            "input_cost_per_token": 2e-06,
            "output_cost_per_token": 1e-05,
            "cache_creation_input_token_cost": 2.5e-06,
            "cache_creation_input_token_cost_above_1hr": 4e-06,
            "input_cost_per_token_above_200k_tokens": 4e-06,
            "cache_creation_input_token_cost_above_1hr_above_200k_tokens": 8e-06,
            "litellm_provider": "anthropic",
            "mode": "chat",
        },
        "chain-latest": {"alias_of": "claude-next-latest"},
        "bundled-name": {"alias_of": "gpt-4o"},
        "image-latest": {"alias_of": "dall-e-3"},
        "dall-e-3": LITELLM["dall-e-3"],
        "ours-1": {"input": 1, "output": 2},  # our format in the same file still counts
    }
    catalog = ModelCatalog.default()
    touched = catalog.update(data)
    assert touched == ["claude-next-1", "ours-1", "gpt-4o"]
    assert catalog.get("ours-1").output_price == D(2)
    info = catalog.get("claude-next-latest")
    assert info.id == "claude-next-1" and catalog.get("chain-latest").id == "claude-next-1"
    assert set(info.aliases) == {"claude-next-latest", "chain-latest"}
    assert (info.cache_write_price, info.cache_write_1h_price) == (D("2.5"), D("4"))
    assert info.long_context is not None and info.long_context.cache_write_1h_price == D("8")
    assert catalog.get("bundled-name").id == "gpt-4o"
    for skipped in ("fallback_generalizations", "image-latest", "dall-e-3"):
        assert skipped not in catalog
    assert catalog.copy().get("chain-latest").id == "claude-next-1"  # aliases survive a copy


def test_a_litellm_alias_of_an_unknown_model_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match=r"'gpt-x-latest' is an alias of 'gpt-x'"):
        ModelCatalog().update({"gpt-x-latest": {"alias_of": "gpt-x"}})
    with pytest.raises(ConfigurationError, match=r"'bad'.*number"):
        ModelCatalog().update({"bad": {"input_cost_per_token": [1], "output_cost_per_token": 1}})


def test_bad_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        ModelCatalog.load(tmp_path / "missing.yaml")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("prices: [unclosed")
    with pytest.raises(ConfigurationError, match="cannot parse"):
        ModelCatalog.load(bad_yaml)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{nope")
    with pytest.raises(ConfigurationError, match="cannot parse"):
        ModelCatalog.load(bad_json)
    not_a_map = tmp_path / "list.yaml"
    not_a_map.write_text("- a\n- b\n")
    with pytest.raises(ConfigurationError, match="mapping"):
        ModelCatalog.load(not_a_map)


def test_model_info_accepts_compact_keys_and_is_frozen() -> None:
    info = ModelInfo.model_validate(
        {"id": "m", "input": 1, "output": 2, "cache_read": "0.1", "max_input_tokens": 1000}
    )
    assert (info.cached_input_price, info.context_window) == (D("0.1"), 1000)
    with pytest.raises(ValueError, match="frozen"):
        info.input_price = D(5)  # type: ignore[misc]


def test_default_catalog_copies_are_independent() -> None:
    a, b = ModelCatalog.default(), ModelCatalog.default()
    a.add("only-in-a", input=1, output=1)
    assert "only-in-a" in a and "only-in-a" not in b
    c = a.copy()
    c.add("only-in-c", input=1, output=1)
    assert "only-in-c" not in a
    assert len(b) == 25


# -- LiteLLM's real file (tests/data/README.md: litellm 1.110.2) -------------------------

LITELLM_FILE = Path(__file__).parents[2] / "data" / "litellm_model_prices_1.110.2.json.gz"
M = D(1_000_000)


@pytest.fixture(scope="module")
def litellm_text() -> str:
    with gzip.open(LITELLM_FILE, "rt", encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def litellm_raw(litellm_text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(litellm_text, parse_float=Decimal)
    return data


@pytest.fixture
def litellm_path(tmp_path: Path, litellm_text: str) -> Path:
    path = tmp_path / "model_prices_and_context_window.json"  # as LiteLLM ships it
    path.write_text(litellm_text, encoding="utf-8")
    return path


def _priced(raw: dict[str, Any]) -> list[str]:
    return [
        name
        for name, entry in raw.items()
        if name != "sample_spec"
        and isinstance(entry, dict)
        and entry.get("input_cost_per_token") is not None
        and entry.get("output_cost_per_token") is not None
    ]


def test_litellms_real_file_loads_as_is(litellm_path: Path, litellm_raw: dict[str, Any]) -> None:
    assert len(litellm_raw) == 4878  # the file tests/data/README.md describes
    assert "fallback_generalizations" in litellm_raw
    catalog = ModelCatalog.load(litellm_path, include_default=False)
    priced = _priced(litellm_raw)
    assert len(catalog) == len(priced) > 3000
    aliases = {k: v["alias_of"] for k, v in litellm_raw.items() if "alias_of" in v}
    assert len(aliases) == 98
    for alias, target in aliases.items():
        assert catalog.get(alias).id == target, alias
    assert "fallback_generalizations" not in catalog and "sample_spec" not in catalog


def _sample(raw: dict[str, Any]) -> list[str]:
    named = [
        "gpt-4o",
        "gpt-5-mini",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-opus-4-6",
        "vertex_ai/claude-sonnet-4-5",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "gemini/gemini-2.5-pro",
        "gemini-2.5-flash",
    ]
    return named + random.Random(1102).sample(sorted(_priced(raw)), 60)


def _per_million(entry: dict[str, Any], key: str) -> Decimal | None:
    value = entry.get(key)
    return None if value is None else D(value) * M


def test_a_sample_of_models_prices_equal_the_raw_files(
    litellm_path: Path, litellm_raw: dict[str, Any]
) -> None:
    catalog = ModelCatalog.load(litellm_path, include_default=False)
    columns = (
        ("input_price", "input_cost_per_token"),
        ("output_price", "output_cost_per_token"),
        ("cached_input_price", "cache_read_input_token_cost"),
        ("cache_write_price", "cache_creation_input_token_cost"),
        ("cache_write_1h_price", "cache_creation_input_token_cost_above_1hr"),
    )
    for name in _sample(litellm_raw):
        entry, info = litellm_raw[name], catalog.get(name)
        assert info.id == name
        for ours, theirs in columns:
            assert getattr(info, ours) == _per_million(entry, theirs), (name, ours)
        assert info.provider == entry.get("litellm_provider"), name
        tiers = [k for k in entry if k.startswith("input_cost_per_token_above_")]
        tiers = [k for k in tiers if k.endswith("k_tokens")]
        if not tiers:
            assert info.long_context is None, name
            continue
        lowest = min(int(k.removeprefix("input_cost_per_token_above_")[:-8]) for k in tiers)
        tier = info.long_context
        assert tier is not None and tier.threshold == lowest * 1000, name
        above = f"_above_{lowest}k_tokens"
        assert tier.input_price == _per_million(entry, "input_cost_per_token" + above), name


def test_litellms_file_over_the_bundled_table(litellm_path: Path) -> None:
    catalog = ModelCatalog.load(litellm_path)
    claude = catalog.get("claude-sonnet-4-5")
    assert claude.long_context is None  # the stale bundled tier is gone
    assert (claude.cache_write_price, claude.cache_write_1h_price) == (D("3.75"), D("6"))
    assert claude.role == "balanced"
    call = Usage(input_tokens=300_000, output_tokens=1_000)
    assert CostCalculator(catalog).cost("claude-sonnet-4-5", call).amount == D("0.915")
    # the issue's call prices the same from the file as from the bundled table
    issue = Usage(
        input_tokens=5050,
        output_tokens=200,
        cache_read_tokens=3000,
        cache_creation_tokens=2000,
        cache_creation_1h_tokens=2000,
    )
    assert CostCalculator(catalog).cost("claude-sonnet-4-5", issue).amount == D("0.01605")
    assert catalog.get("simulated").input_price == D("0.10")  # bundled-only models stay
    assert catalog.get("claude-opus-latest").id == "claude-opus-5-5"
