"""What one model costs: its prices (USD per 1M tokens), long-context tier and limits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

__all__ = ["LongContextPricing", "ModelInfo", "Role"]

Role = Literal["flagship", "balanced", "fast"]


def _price(*names: str) -> Any:
    return Field(default=None, ge=0, validation_alias=AliasChoices(*names))


class LongContextPricing(BaseModel):
    """Rates (USD per 1M tokens) for a call whose input exceeds ``threshold`` tokens.

    Columns left unset keep the model's base rate.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    threshold: int = Field(gt=0)
    input_price: Decimal | None = _price("input_price", "input")
    output_price: Decimal | None = _price("output_price", "output")
    cached_input_price: Decimal | None = _price("cached_input_price", "cached_input", "cache_read")
    cache_write_price: Decimal | None = _price("cache_write_price", "cache_write", "cache_creation")
    cache_write_1h_price: Decimal | None = _price("cache_write_1h_price", "cache_write_1h")


class ModelInfo(BaseModel):
    """What one model costs and how much it takes, prices in USD per 1M tokens.

    Accepts the compact keys of price files too (``input``, ``cached_input``,
    ``cache_write``, ``cache_write_1h``, ``output``, ``max_input_tokens``).

    Attributes:
        id: Canonical model name in the catalog.
        input_price: Uncached input tokens.
        output_price: Output tokens (reasoning tokens included).
        cached_input_price: Cache reads; None means the input price.
        cache_write_price: Cache writes (Anthropic's 5-minute writes); None means the
            input price.
        cache_write_1h_price: Cache writes kept for one hour (Anthropic: 2x the input
            price); None means the cache-write price.
        long_context: Rates for calls over a context-size threshold, if any.
        context_window: Most input tokens, if known.
        max_output_tokens: Most output tokens, if known.
        provider: Provider name (LiteLLM's naming).
        role: ``flagship``, ``balanced`` or ``fast``.
        aliases: Other names that resolve to this model.

    Example:
        >>> info = ModelInfo(id="my-model", input=1, output=2)
        >>> info.input_price, info.cached_input_price
        (Decimal('1'), None)
        >>> ModelInfo(id="m", input=3, output=15, cache_write=3.75).write_1h_rate()
        Decimal('3.75')
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(min_length=1)
    input_price: Decimal = Field(ge=0, validation_alias=AliasChoices("input_price", "input"))
    output_price: Decimal = Field(ge=0, validation_alias=AliasChoices("output_price", "output"))
    cached_input_price: Decimal | None = _price("cached_input_price", "cached_input", "cache_read")
    cache_write_price: Decimal | None = _price("cache_write_price", "cache_write", "cache_creation")
    cache_write_1h_price: Decimal | None = _price("cache_write_1h_price", "cache_write_1h")
    long_context: LongContextPricing | None = None
    context_window: int | None = Field(
        default=None, gt=0, validation_alias=AliasChoices("context_window", "max_input_tokens")
    )
    max_output_tokens: int | None = Field(default=None, gt=0)
    provider: str | None = None
    role: Role | None = None
    aliases: tuple[str, ...] = ()
    currency: str = "USD"

    def rates(self, input_tokens: int = 0) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """Per-1M rates ``(input, cache read, cache write, output)`` for a call.

        The long-context tier applies when ``input_tokens`` exceeds its threshold.
        """
        inp, out = self.input_price, self.output_price
        read = self.cached_input_price if self.cached_input_price is not None else inp
        write = self.cache_write_price if self.cache_write_price is not None else inp
        tier = self.long_context
        if tier is not None and input_tokens > tier.threshold:
            new_inp = tier.input_price if tier.input_price is not None else inp
            if tier.cached_input_price is not None:
                read = tier.cached_input_price
            elif self.cached_input_price is None:
                read = new_inp
            if tier.cache_write_price is not None:
                write = tier.cache_write_price
            elif self.cache_write_price is None:
                write = new_inp
            inp = new_inp
            out = tier.output_price if tier.output_price is not None else out
        return inp, read, write, out

    def write_1h_rate(self, input_tokens: int = 0) -> Decimal:
        """Per-1M rate of 1-hour cache writes for a call with ``input_tokens`` input.

        Falls back to the cache-write rate (then the input rate) when no 1-hour price
        is known; the long-context tier applies as in :meth:`rates`.
        """
        _inp, _read, write, _out = self.rates(input_tokens)
        rate = self.cache_write_1h_price if self.cache_write_1h_price is not None else write
        tier = self.long_context
        if tier is not None and input_tokens > tier.threshold:
            if tier.cache_write_1h_price is not None:
                rate = tier.cache_write_1h_price
            elif self.cache_write_1h_price is None:
                rate = write
        return rate


_FILE_KEYS = {
    "input_price": "input",
    "output_price": "output",
    "cached_input_price": "cached_input",
    "cache_write_price": "cache_write",
    "cache_write_1h_price": "cache_write_1h",
}


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(_FILE_KEYS.get(str(x), str(x)) for x in err["loc"]) or "entry"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
