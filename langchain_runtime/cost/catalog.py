"""Model prices and limits: the bundled table, overrides, and name resolution."""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from langchain_runtime.cost._model_info import (
    LongContextPricing,
    ModelInfo,
    Role,
    validation_message,
)
from langchain_runtime.cost._price_files import (
    SAMPLE_SPEC,
    alias_target,
    from_litellm,
    is_litellm,
    is_litellm_document,
    read_file,
    split_document,
)
from langchain_runtime.errors import ConfigurationError

__all__ = ["LongContextPricing", "ModelCatalog", "ModelInfo", "Role"]

logger = logging.getLogger(__name__)

_ONE_MILLION = Decimal(1_000_000)
#: Suffixes that name a snapshot of the same model at the same price: dates
#: (2024-08-06, 20250929, @20250929), -latest, Bedrock's -v1:0 and 3-digit versions.
_VERSION_SUFFIX = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-latest|-v\d+(?::\d+)?|-\d{3})+")
_BEDROCK_VENDOR = re.compile(
    r"^(?:(?:us|eu|apac|jp|au|global)\.)?"
    r"(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|google)\.(.+)$"
)
_PROVIDER_WORD = re.compile(r"^[a-z][a-z0-9_-]*$")

_FOUND_CACHE_SIZE = 1024
_UNSET = "\x00unset"

_HOW_TO_ADD = (
    "Add its price (USD per 1M tokens) with catalog.add({model!r}, input=..., output=...), "
    "load a price file with ModelCatalog.load('prices.yaml'), or add a `prices:` entry to "
    "your YAML config, e.g.\n  prices:\n    {model}: {{input: 1.0, output: 2.0}}"
)


@lru_cache(maxsize=1)
def _bundled() -> tuple[tuple[ModelInfo, ...], dict[str, str]]:
    text = (
        resources.files("langchain_runtime")
        .joinpath("data/model_prices.json")
        .read_text(encoding="utf-8")
    )
    catalog = ModelCatalog()
    catalog.update(json.loads(text, parse_float=Decimal))
    return tuple(catalog), {"source": catalog.source or "", "date": catalog.date or ""}


class ModelCatalog:
    """Prices and limits of models, looked up by any name a model goes by.

    ``ModelCatalog.default()`` is the bundled table (see ``langchain_runtime/data``);
    :meth:`load`, :meth:`update` and :meth:`add` replace models, change their
    columns or add models, from YAML/JSON files or dicts, in our compact per-1M format
    or in LiteLLM's per-token ``model_prices_and_context_window.json`` exactly as
    LiteLLM ships it (see :meth:`update`: a full entry from a file replaces the
    model's entry whole).

    Names resolve exactly, then without a provider prefix (``openai:gpt-4o``,
    ``openai/gpt-4o``, ``us.anthropic.claude-...``), then by the longest known name
    followed only by a snapshot suffix (a date, ``-latest``, ``-v1:0``), so
    ``gpt-4o-2024-08-06`` is ``gpt-4o`` but ``gpt-4o-mini-xyz`` is unknown.

    Thread-safe.

    Example:
        >>> catalog = ModelCatalog.default()
        >>> catalog.get("openai:gpt-4o-2024-08-06").id
        'gpt-4o'
        >>> catalog.add("my-model", input=1.0, output=2.0).output_price
        Decimal('2.0')
        >>> catalog.find("gpt-4o-mini-xyz") is None
        True
    """

    def __init__(
        self,
        models: Iterable[ModelInfo] = (),
        *,
        source: str | None = None,
        date: str | None = None,
        currency: str = "USD",
    ) -> None:
        self.source = source
        self.date = date
        self.currency = currency
        self._lock = threading.RLock()
        self._models: dict[str, ModelInfo] = {}
        self._aliases: dict[str, str] = {}
        self._prefixes: list[str] | None = None
        #: name as asked -> catalog key (or None): resolution is on every model call.
        self._found: dict[str, str | None] = {}
        for info in models:
            self._put(info)

    # -- construction ----------------------------------------------------------------

    @classmethod
    def default(cls) -> ModelCatalog:
        """A fresh copy of the bundled price table (parsed once per process)."""
        models, meta = _bundled()
        return cls(models, source=meta["source"], date=meta["date"])

    @classmethod
    def load(
        cls,
        *sources: str | os.PathLike[str] | Mapping[str, Any],
        include_default: bool = True,
    ) -> ModelCatalog:
        """A catalog from price files or dicts, applied in order (see :meth:`update`).

        Args:
            *sources: Paths to ``.yaml``/``.yml``/``.json`` files (LiteLLM's
                ``model_prices_and_context_window.json`` as-is included), or mappings.
            include_default: Start from the bundled table (True) or from nothing.

        Raises:
            ConfigurationError: A file cannot be read or an entry is invalid.
        """
        catalog = cls.default() if include_default else cls()
        for source in sources:
            catalog.update(source)
        return catalog

    def copy(self) -> ModelCatalog:
        """An independent copy of this catalog."""
        with self._lock:
            return ModelCatalog(
                self._models.values(), source=self.source, date=self.date, currency=self.currency
            )

    def update(self, source: str | os.PathLike[str] | Mapping[str, Any]) -> list[str]:
        """Override or add models from a file or a mapping; returns the ids touched.

        A mapping may be ``{"models": {...}}``, ``{"prices": {...}}`` or a flat mapping
        of model names to entries. LiteLLM's ``model_prices_and_context_window.json``
        is read as LiteLLM ships it: its per-token prices are converted, its
        ``{"alias_of": ...}`` entries become names of their target, and entries
        without token prices (images, audio...), ``sample_spec`` and entries that are
        no model (``fallback_generalizations``) are skipped.

        An entry that gives both ``input`` and ``output`` (every LiteLLM model entry)
        replaces the entry of that model whole: price tiers, cache prices and limits
        it does not give are gone, so a stale bundled tier cannot outlive a newer
        file. Only ``role`` and ``aliases``, which LiteLLM's format has no column for,
        are kept unless the entry gives them. An entry with fewer columns (``gpt-4o:
        {cached_input: 1.0}``) changes just those columns of a known model.

        Raises:
            ConfigurationError: A file cannot be read, an entry is invalid, or an
                alias names a model that is neither in the file nor in the catalog.
        """
        data = read_file(Path(source)) if not isinstance(source, Mapping) else source
        entries, meta = split_document(data)
        litellm = is_litellm_document(entries)
        touched: list[str] = []
        aliases: dict[str, str] = {}
        skipped: set[str] = set()
        with self._lock:
            for raw_name, entry in entries.items():
                name = str(raw_name).strip()
                if name == SAMPLE_SPEC:
                    continue
                target = alias_target(entry) if litellm else None
                if target is not None:
                    aliases[name] = target
                    continue
                if not isinstance(entry, Mapping) or (litellm and not _is_price(entry)):
                    if litellm:  # routing rules and other entries that are no model
                        logger.debug("skipping %s: not a model entry", name)
                        skipped.add(name.lower())
                        continue
                    raise ConfigurationError(
                        f"price entry for model {name!r} must be a mapping, got "
                        f"{type(entry).__name__}"
                    )
                if is_litellm(entry):
                    fields = _litellm_fields(name, entry)
                    if fields is None:
                        logger.debug("skipping %s: no per-token prices", name)
                        skipped.add(name.lower())
                        continue
                    touched.append(self._replace(name, fields).id)
                elif _is_complete(entry):
                    touched.append(self._replace(name, entry, by_alias=True).id)
                else:
                    touched.append(self._merge(name, entry).id)
            touched.extend(self._add_aliases(aliases, skipped))
            self.source = meta.get("source", self.source)
            self.date = meta.get("date", self.date)
            self.currency = meta.get("currency", self.currency)
        return list(dict.fromkeys(touched))

    def _add_aliases(self, aliases: Mapping[str, str], skipped: set[str]) -> list[str]:
        """Make each alias a name of its target; returns the ids that got names."""
        touched: list[str] = []
        pending = dict(aliases)
        while pending:
            progressed = False
            for alias, target in list(pending.items()):
                key = self._key(target)
                if key is None:
                    continue
                del pending[alias]
                progressed = True
                info = self._models[key]
                if alias.lower() != key:
                    self._models.pop(alias.lower(), None)  # the alias wins over a model
                    if alias not in info.aliases:
                        info = info.model_copy(update={"aliases": (*info.aliases, alias)})
                    self._put(info)
                touched.append(info.id)
            if not progressed:
                break
        for alias, target in pending.items():
            if target.lower() in skipped or aliases.get(target) is not None:
                # the target has no token prices (an image model...), nor has its alias
                logger.debug("skipping alias %s: %s has no token prices", alias, target)
                continue
            raise ConfigurationError(
                f"price entry {alias!r} is an alias of {target!r}, which is neither in "
                "the file nor in the catalog"
            )
        return touched

    def add(self, model: str | ModelInfo, **fields: Any) -> ModelInfo:
        """Add a model, or change columns of a known one; returns its entry.

        Example:
            >>> c = ModelCatalog()
            >>> c.add("m", input=1, output=2, role="fast").role
            'fast'
        """
        with self._lock:
            if isinstance(model, ModelInfo):
                if fields:
                    model = model.model_copy(update=fields)
                self._put(model)
                return model
            return self._merge(model.strip(), fields)

    def _merge(self, name: str, fields: Mapping[str, Any]) -> ModelInfo:
        """Change the given columns of ``name`` (under any name it goes by), or add it."""
        key = name.lower()
        existing_id = key if key in self._models else self._aliases.get(key)
        base: dict[str, Any] = {}
        if existing_id is not None:
            base = self._models[existing_id].model_dump(exclude_none=True)
        return self._validated(name, {**base, **_canonical_keys(fields)})

    def _replace(
        self, name: str, fields: Mapping[str, Any], *, by_alias: bool = False
    ) -> ModelInfo:
        """Replace the entry of ``name`` whole, keeping only its role and aliases.

        LiteLLM entries replace the model of exactly that name (a file's dated
        snapshot becomes a model of its own); our compact entries, like
        :meth:`add`, also reach a model through its aliases.
        """
        key = name.lower()
        existing_id = key if key in self._models else None
        if existing_id is None and by_alias:
            existing_id = self._aliases.get(key)
        kept: dict[str, Any] = {}
        if existing_id is not None:
            old = self._models[existing_id]
            kept = {"id": old.id, "aliases": old.aliases}
            if old.role is not None:
                kept["role"] = old.role
        return self._validated(name, {**kept, **_canonical_keys(fields)})

    def _validated(self, name: str, merged: dict[str, Any]) -> ModelInfo:
        merged.setdefault("id", name)
        try:
            info = ModelInfo.model_validate(merged)
        except ValidationError as exc:
            raise ConfigurationError(
                f"invalid price entry for model {name!r}: {validation_message(exc)} "
                "(prices are USD per 1M tokens; required: input, output)"
            ) from exc
        self._put(info)
        return info

    def _put(self, info: ModelInfo) -> None:
        key = info.id.lower()
        owner = self._aliases.pop(key, None)
        if owner is not None and owner in self._models:
            # a model of its own now: no longer another model's alias
            other = self._models[owner]
            kept = tuple(a for a in other.aliases if a.lower() != key)
            self._models[owner] = other.model_copy(update={"aliases": kept})
        self._models[key] = info
        for alias in info.aliases:
            if alias.lower() != key:
                self._aliases[alias.lower()] = key
        self._prefixes = None
        self._found = {}

    # -- lookup ----------------------------------------------------------------------

    def _lookup(self, name: str) -> str | None:
        if name in self._models:
            return name
        if name in self._aliases:
            return self._aliases[name]
        if self._prefixes is None:
            self._prefixes = sorted({*self._models, *self._aliases}, key=len, reverse=True)
        for known in self._prefixes:
            if name.startswith(known) and _VERSION_SUFFIX.fullmatch(name[len(known) :]):
                return known if known in self._models else self._aliases[known]
        return None

    def _key(self, model: str) -> str | None:
        cached = self._found.get(model, _UNSET)  # one read: safe while another thread adds
        if cached is not _UNSET:
            return cached
        with self._lock:
            found = None
            for candidate in _candidates(model):
                found = self._lookup(candidate)
                if found is not None:
                    break
            if len(self._found) >= _FOUND_CACHE_SIZE:
                self._found = {}
            self._found[model] = found
        return found

    def resolve(self, model: str) -> str | None:
        """The catalog id ``model`` resolves to, or None."""
        info = self.find(model)
        return info.id if info is not None else None

    def find(self, model: str) -> ModelInfo | None:
        """The entry for ``model`` under any name it goes by, or None."""
        key = self._key(model)
        return self._models.get(key) if key is not None else None

    def get(self, model: str) -> ModelInfo:
        """The entry for ``model``.

        Raises:
            ConfigurationError: No price is known for ``model``; the message names it,
                suggests close names and says how to add a price.
        """
        info = self.find(model)
        if info is not None:
            return info
        with self._lock:
            close = difflib.get_close_matches(model.lower(), list(self._models), n=3)
        hint = f" Close names in the catalog: {', '.join(close)}." if close else ""
        raise ConfigurationError(
            f"No price is known for model {model!r}.{hint} " + _HOW_TO_ADD.format(model=model)
        )

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.find(model) is not None

    def __iter__(self) -> Iterator[ModelInfo]:
        with self._lock:
            return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"ModelCatalog({len(self)} models, source={self.source!r}, date={self.date!r})"


_KEY_ALIASES = {
    "input": "input_price",
    "output": "output_price",
    "cached_input": "cached_input_price",
    "cache_read": "cached_input_price",
    "cache_write": "cache_write_price",
    "cache_creation": "cache_write_price",
    "cache_write_1h": "cache_write_1h_price",
    "max_input_tokens": "context_window",
}


def _litellm_fields(name: str, entry: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        return from_litellm(entry)
    except (ValueError, ArithmeticError) as exc:
        raise ConfigurationError(f"invalid LiteLLM price entry for model {name!r}: {exc}") from exc


def _canonical_keys(fields: Mapping[str, Any]) -> dict[str, Any]:
    # So that an override's compact key replaces the base's field of the same meaning;
    # an entry never renames the model it is filed under.
    return {_KEY_ALIASES.get(k, k): v for k, v in fields.items() if k != "id"}


def _is_price(entry: Mapping[str, Any]) -> bool:
    """Whether an entry prices a model, in LiteLLM's format or in ours."""
    return is_litellm(entry) or not _canonical_keys(entry).keys().isdisjoint(ModelInfo.model_fields)


def _is_complete(entry: Mapping[str, Any]) -> bool:
    keys = _canonical_keys(entry)
    return "input_price" in keys and "output_price" in keys


def _candidates(model: str) -> list[str]:
    """Names to try for ``model``, most specific first."""
    name = model.strip().lower()
    out = [name]
    if ":" in name and "/" not in name:
        out.append(name.replace(":", "/", 1))  # gemini:gemini-2.5-pro -> gemini/...
    for current in list(out):
        if "/" in current:
            out.append(current.rsplit("/", 1)[1])
    for current in list(out):
        head, sep, tail = current.partition(":")
        if sep and tail and _PROVIDER_WORD.match(head):
            out.append(tail)
    for current in list(out):
        match = _BEDROCK_VENDOR.match(current)
        if match:
            out.append(match.group(1))
    return [c for c in dict.fromkeys(out) if c]
