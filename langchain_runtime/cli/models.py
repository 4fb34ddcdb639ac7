"""``models``: the price catalog, and the model registry of a configuration file."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table

from langchain_runtime.cli._fit import Column, print_fitted
from langchain_runtime.cli.errors import CliError
from langchain_runtime.cli.options import priced_name as registry_name
from langchain_runtime.config import RuntimeConfig
from langchain_runtime.cost import ModelCatalog, ModelInfo

__all__ = ["models_json", "print_models", "shown_provider"]


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


#: How a catalog provider is shown: the name a user knows it by (the bundled
#: catalog calls Gemini's provider by its LiteLLM name).
_SHOWN = {"vertex_ai-language-models": "google"}
#: Other names ``--provider`` accepts for a catalog provider.
_ALIASES = {
    "google": "vertex_ai-language-models",
    "google_genai": "vertex_ai-language-models",
    "google_vertexai": "vertex_ai-language-models",
    "gemini": "vertex_ai-language-models",
}


def shown_provider(provider: str | None) -> str:
    """``provider`` as the table shows it (``google`` for the catalog's Gemini models)."""
    return _SHOWN.get(provider or "", provider or "")


def _catalog_provider(catalog: ModelCatalog, provider: str) -> str:
    """The catalog's name for ``provider`` (which may be an alias such as ``google``).

    Raises:
        CliError: No model of the catalog has that provider (exit 2), with the
            closest known name.
    """
    from langchain_runtime.config._errors import did_you_mean

    known = {m.provider for m in catalog if m.provider}
    wanted = _ALIASES.get(provider, provider)
    if wanted in known:
        return wanted
    names = sorted(
        {shown_provider(p) for p in known} | {p for p in _ALIASES if _ALIASES[p] in known}
    )
    close = did_you_mean(provider, names)
    hint = f"; did you mean {close!r}?" if close else ""
    listed = ", ".join(sorted(shown_provider(p) for p in known))
    raise CliError(f"unknown provider {provider!r}{hint} (known: {listed})")


def _catalog_rows(catalog: ModelCatalog, provider: str | None) -> list[ModelInfo]:
    wanted = _catalog_provider(catalog, provider) if provider is not None else None
    rows = [m for m in catalog if wanted is None or (m.provider or "") == wanted]
    return sorted(rows, key=lambda m: (shown_provider(m.provider) or "~", m.id))


def print_models(
    console: Console,
    catalog: ModelCatalog,
    config: RuntimeConfig | None = None,
    *,
    provider: str | None = None,
) -> None:
    """The catalog's prices per 1M tokens, then the file's registry and what it costs."""
    cur = catalog.currency
    shown = _catalog_rows(catalog, provider)
    count = f"{len(shown)} of {len(catalog)}" if provider is not None else str(len(catalog))
    table = Table(
        title=f"Model catalog ({count} models): prices in {cur} per 1M tokens",
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
            escape(shown_provider(info.provider)),
            info.role or "",
            _rate(info.input_price),
            _rate(info.cached_input_price),
            _rate(info.output_price),
            _window(info.context_window),
        )
        for info in shown
    ]
    for i, (name, justify) in enumerate(columns):
        # a model's id is what a user copies, and a name or price is read whole: never cut
        widest = max([len(name), *(len(row[i]) for row in rows)])
        table.add_column(name, justify=justify, no_wrap=True, min_width=widest)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if config is None or not config.models:
        return
    entries: list[list[str]] = []
    notes: dict[int, str] = {}
    for i, (model_id, entry) in enumerate(config.models.items()):
        priced = catalog.find(registry_name(config, model_id))
        entries.append(
            [
                escape(model_id),
                escape(entry.provider),
                escape(registry_name(config, model_id)),
                escape(priced.id) if priced is not None else "[red]no price[/]",
                _rate(priced.input_price) if priced is not None else "",
                _rate(priced.output_price) if priced is not None else "",
            ]
        )
        notes[i] = escape(", ".join(f"{k}={v}" for k, v in sorted(entry.params.items())))
    print_fitted(
        console,
        title=f"Model registry of {escape(config.source)}",
        columns=[
            Column("id"),
            Column("provider"),
            Column("model"),
            Column("priced as"),
            Column("input", "right"),
            Column("output", "right"),
        ],
        rows=entries,
        notes=notes,
    )


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
