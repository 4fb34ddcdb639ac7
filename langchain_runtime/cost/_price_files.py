"""Reading price files: our compact per-1M format and LiteLLM's per-token format.

LiteLLM's ``model_prices_and_context_window.json`` is read as LiteLLM ships it: model
entries (USD per token), ``{"alias_of": "<model>"}`` entries naming another entry, the
``sample_spec`` documentation entry and entries that describe no model at all (such
as ``fallback_generalizations``, routing rules).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from langchain_runtime.errors import ConfigurationError

_ONE_MILLION = Decimal(1_000_000)
_LITELLM_KEYS = frozenset(
    {
        "input_cost_per_token",
        "output_cost_per_token",
        "cache_read_input_token_cost",
        "cache_creation_input_token_cost",
        "litellm_provider",
        "max_input_tokens",
        "mode",
    }
)
_LITELLM_TIER = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")
#: LiteLLM's key for an entry that is another name of a model in the same file.
ALIAS_KEY = "alias_of"
#: LiteLLM's documentation entry: it looks like a model but is a template.
SAMPLE_SPEC = "sample_spec"
_COLUMNS = (
    ("input", "input_cost_per_token"),
    ("output", "output_cost_per_token"),
    ("cached_input", "cache_read_input_token_cost"),
    ("cache_write", "cache_creation_input_token_cost"),
    ("cache_write_1h", "cache_creation_input_token_cost_above_1hr"),
)


def per_million(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise ValueError(f"a price must be a number, got {value!r}")
    amount = (Decimal(str(value)) * _ONE_MILLION).normalize()
    exponent = amount.as_tuple().exponent
    # normalize() writes 10 as 1E+1; keep plain integers plain.
    return amount.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else amount


def is_litellm(entry: Mapping[str, Any]) -> bool:
    return any(key in _LITELLM_KEYS or _LITELLM_TIER.match(key) for key in entry)


def alias_target(entry: Any) -> str | None:
    """The model a LiteLLM ``{"alias_of": ...}`` entry names, else None."""
    if isinstance(entry, Mapping) and set(entry) == {ALIAS_KEY}:
        target = entry[ALIAS_KEY]
        if isinstance(target, str) and target.strip():
            return target.strip()
    return None


def is_litellm_document(entries: Mapping[str, Any]) -> bool:
    """Whether a price table is in LiteLLM's format (any model or alias entry is)."""
    return any(
        isinstance(entry, Mapping) and (is_litellm(entry) or alias_target(entry) is not None)
        for entry in entries.values()
    )


def from_litellm(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """Our compact fields from a LiteLLM entry, or None if it has no token prices."""
    if entry.get("input_cost_per_token") is None or entry.get("output_cost_per_token") is None:
        return None
    fields: dict[str, Any] = {
        ours: per_million(entry[theirs])
        for ours, theirs in _COLUMNS
        if entry.get(theirs) is not None
    }
    if isinstance(entry.get("max_input_tokens"), int) and entry["max_input_tokens"] > 0:
        fields["context_window"] = entry["max_input_tokens"]
    if isinstance(entry.get("max_output_tokens"), int) and entry["max_output_tokens"] > 0:
        fields["max_output_tokens"] = entry["max_output_tokens"]
    if isinstance(entry.get("litellm_provider"), str):
        fields["provider"] = entry["litellm_provider"]
    thresholds = sorted(int(m.group(1)) for k in entry if (m := _LITELLM_TIER.match(k)))
    if thresholds:
        # One tier is modelled; the lowest is the one most calls cross.
        k = thresholds[0]
        tier: dict[str, Any] = {"threshold": k * 1000}
        for ours, theirs in _COLUMNS:
            value = entry.get(f"{theirs}_above_{k}k_tokens")
            if value is not None:
                tier[ours] = per_million(value)
        fields["long_context"] = tier
    return fields


def read_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read price file {str(path)!r}: {exc}") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"cannot parse price file {str(path)!r}: {exc}") from exc
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise ConfigurationError(f"cannot parse price file {str(path)!r}: {exc}") from exc


def split_document(data: Any) -> tuple[Mapping[str, Any], dict[str, str]]:
    """(entries by model name, metadata) of a price document in any accepted shape."""
    if not isinstance(data, Mapping):
        raise ConfigurationError("a price table must be a mapping of model names to prices")
    meta = {k: str(data[k]) for k in ("source", "date", "currency") if k in data}
    for key in ("models", "prices"):
        if isinstance(data.get(key), Mapping):
            return data[key], meta
    return data, {}
