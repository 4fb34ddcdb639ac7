"""``models``: the price catalog, and the model registry of a configuration file."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table

from langchain_runtime.cli.options import priced_name as registry_name
from langchain_runtime.config import RuntimeConfig
from langchain_runtime.cost import ModelCatalog, ModelInfo

__all__ = ["models_json", "print_models"]


def _window(tokens: int | None) -> str:
    """``200k``, ``1M``, ``1.05M``: a context window in a narrow column."""
    if not tokens:
        return ""
    if tokens >= 1_000_000:
        return f"{tokens / 1_000_000:.3g}M"
    if tokens >= 1_000:
        return f"{tokens / 1_000:.3g}k"
    return str(tokens)


def _rate(value: Decimal | None) -> str:
    return "—" if value is None else f"{value.normalize():f}"


def _catalog_rows(catalog: ModelCatalog, provider: str | None) -> list[ModelInfo]:
    rows = [m for m in catalog if provider is None or (m.provider or "") == provider]
    return sorted(rows, key=lambda m: ((m.provider or "~"), m.id))


def print_models(
    console: Console,
    catalog: ModelCatalog,
    config: RuntimeConfig | None = None,
    *,
    provider: str | None = None,
) -> None:
    """The catalog's prices per 1M tokens, then the file's registry and what it costs."""
    cur = catalog.currency
    table = Table(
        title=f"Model catalog ({len(catalog)} models): prices in {cur} per 1M tokens",
        title_justify="left",
        # no borders: at 80 columns every id and price fits whole
        box=None,
        pad_edge=False,
        header_style="bold underline",
        caption=(
            f"Source: {escape(catalog.source or 'unknown')}; date: {catalog.date or 'unknown'}. "
            "cached: the cached-input rate (— : none, charged at the input rate); "
            "context: the context window in tokens."
        ),
        caption_justify="left",
    )
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("model", "left"),
        ("provider", "left"),
        ("role", "left"),
        ("input", "right"),
        ("cached", "right"),
        ("output", "right"),
        ("context", "right"),
    )
    rows = [
        (
            escape(info.id),
            escape(info.provider or ""),
            info.role or "",
            _rate(info.input_price),
            _rate(info.cached_input_price),
            _rate(info.output_price),
            _window(info.context_window),
        )
        for info in _catalog_rows(catalog, provider)
    ]
    for i, (name, justify) in enumerate(columns):
        if name in ("provider", "role"):
            table.add_column(name, justify=justify, overflow="fold")
        else:
            # a model's id is what a user copies, and a price is read whole: never cut
            widest = max([len(name), *(len(row[i]) for row in rows)])
            table.add_column(name, justify=justify, no_wrap=True, min_width=widest)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if config is None or not config.models:
        return
    registry = Table(title=f"Model registry of {escape(config.source)}", title_justify="left")
    for name in ("id", "provider", "model", "priced as", "input", "output", "parameters"):
        registry.add_column(name, overflow="fold", no_wrap=name == "id")
    for model_id, entry in config.models.items():
        priced = catalog.find(registry_name(config, model_id))
        params = ", ".join(f"{k}={v}" for k, v in sorted(entry.params.items()))
        registry.add_row(
            escape(model_id),
            escape(entry.provider),
            escape(registry_name(config, model_id)),
            escape(priced.id) if priced is not None else "[red]no price[/]",
            _rate(priced.input_price) if priced is not None else "",
            _rate(priced.output_price) if priced is not None else "",
            escape(params),
        )
    console.print(registry)


def _info_json(info: ModelInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "provider": info.provider,
        "role": info.role,
        "input": _money(info.input_price),
        "cached_input": _money(info.cached_input_price),
        "cache_write": _money(info.cache_write_price),
        "output": _money(info.output_price),
        "context_window": info.context_window,
        "max_output_tokens": info.max_output_tokens,
    }


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def models_json(
    catalog: ModelCatalog, config: RuntimeConfig | None = None, *, provider: str | None = None
) -> dict[str, Any]:
    """The catalog (and the registry) as JSON data; prices are per 1M tokens, as strings."""
    data: dict[str, Any] = {
        "currency": catalog.currency,
        "unit": "per 1M tokens",
        "source": catalog.source,
        "date": catalog.date,
        "models": [_info_json(m) for m in _catalog_rows(catalog, provider)],
    }
    if config is not None:
        registry = {}
        for model_id, entry in config.models.items():
            info = catalog.find(registry_name(config, model_id))
            registry[model_id] = {
                "provider": entry.provider,
                "model": registry_name(config, model_id),
                "priced_as": info.id if info is not None else None,
                "parameters": entry.params,
            }
        data["registry"] = registry
    return data
