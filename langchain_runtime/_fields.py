"""Unknown fields are errors: one wording (and one did-you-mean) for every model.

The configuration loader and the domain models both refuse an unknown field with
the same message, naming the field and the closest known one, so a typo such as
``Budget(max_cst=1)`` can never build a budget without a limit.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from langchain_runtime.errors import ConfigurationError

__all__ = [
    "closest",
    "did_you_mean",
    "model_at",
    "unknown_field_message",
    "unknown_fields_error",
]


#: Names people write for a field, from other tools, that spelling distance misses.
_SYNONYMS = {
    "dependencies": "deps",
    "depends_on": "deps",
    "depends": "deps",
    "needs": "deps",
    "after": "deps",
    "retries": "max_retries",
    "parallelism": "max_parallelism",
    "concurrency": "max_parallelism",
    "template": "prompt",
    "name": "id",
}


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` most likely meant, or None: a known synonym, a close
    spelling, or the one choice that ``word`` starts with (or that starts ``word``).

    Example:
        >>> did_you_mean("simulatd", ["openai", "simulated"])
        'simulated'
        >>> did_you_mean("dependencies", ["deps", "id", "prompt"])
        'deps'
        >>> did_you_mean("zzz", ["deps"]) is None
        True
    """
    known = list(dict.fromkeys(choices))
    lowered = word.lower()
    synonym = _SYNONYMS.get(lowered)
    if synonym in known:
        return synonym
    close = difflib.get_close_matches(lowered, known, n=1)
    if close:
        return close[0]
    prefixed = [
        c for c in known if len(c) >= 3 and (lowered.startswith(c) or c.startswith(lowered))
    ]
    return prefixed[0] if len(prefixed) == 1 else None


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name``, when one is close enough.

    Example:
        >>> closest("max_cst", ["max_cost", "max_tokens", "currency"])
        'max_cost'
    """
    return did_you_mean(name, known)


def unknown_field_message(name: str, known: Iterable[str]) -> str:
    """``unknown field; did you mean 'max_cost'? (expected one of: ...)``.

    Example:
        >>> unknown_field_message("stratgy", ["strategy", "max_tokens"])
        "unknown field; did you mean 'strategy'? (expected one of: max_tokens, strategy)"
    """
    fields = sorted(known)
    if not fields:
        return "unknown field"
    near = closest(name, fields)
    hint = f"; did you mean {near!r}?" if near is not None else ""
    return f"unknown field{hint} (expected one of: {', '.join(fields)})"


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _unwrap(tp: Any) -> Any:
    """The model or container type inside Optional/Annotated/Union wrappers."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            arms = [a for a in get_args(tp) if a is not type(None)]
            models = [a for a in map(_unwrap, arms) if _is_model(a)]
            return models[0] if models else _unwrap(arms[0])
        else:
            return tp


def model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model that holds the fields at ``loc`` under ``root``, if the path leads to one."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if _is_model(tp):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            tp = field.annotation
            continue
        origin = get_origin(tp)
        if origin in (list, tuple, dict):
            tp = get_args(tp)[-1] if origin is dict else get_args(tp)[0]
            continue
        return None
    tp = _unwrap(tp)
    return tp if _is_model(tp) else None


def _path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def unknown_fields_error(model: type[BaseModel], exc: ValidationError) -> ConfigurationError | None:
    """A :class:`ConfigurationError` for a validation error with unknown fields, else None.

    Every problem of ``exc`` is listed, one line each, as ``Model: path: message``;
    an unknown field's message names the closest known field.
    """
    errors = exc.errors()
    if not any(err["type"] == "extra_forbidden" for err in errors):
        return None
    lines = []
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            owner = model_at(model, loc[:-1])
            known = owner.model_fields if owner is not None else ()
            message = unknown_field_message(str(loc[-1]), known)
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{model.__name__}: {_path(loc)}: {message}")
    return ConfigurationError("\n".join(lines))
