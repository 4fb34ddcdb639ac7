"""Configuration errors that name the file, the line, the field path and what was expected."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from langchain_runtime.config.schema import UNION_TAGS
from langchain_runtime.errors import ConfigurationError

__all__ = [
    "ConfigFileError",
    "ConfigIssue",
    "Loc",
    "did_you_mean",
    "format_loc",
    "issues_from_validation",
]

#: A location inside a configuration document: mapping keys and list indexes.
Loc = tuple[str | int, ...]
#: Finds the 1-based line of a location in the source file, when it is known.
LineFinder = Callable[[Loc], "int | None"]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_MAX_SHOWN = 60
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


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration.

    Attributes:
        path: Field path, e.g. ``workflows.research.tasks[2].deps`` (empty for the
            whole document).
        message: What is wrong and what was expected.
        line: 1-based line in the source file, when known.
    """

    path: str
    message: str
    line: int | None = None

    def render(self, source: str) -> str:
        """``source:line: path: message``, leaving out the parts that are unknown."""
        where = source if self.line is None else f"{source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigFileError(ConfigurationError):
    """A configuration file (or mapping) is invalid.

    The message holds one line per problem, each naming the source, the line when
    known, the field path and what was expected.

    Attributes:
        source: The file name, or ``<config>`` for a mapping.
        issues: Every problem found.
    """

    def __init__(self, source: str, issues: Sequence[ConfigIssue]):
        self.source = source
        self.issues = tuple(issues)
        lines = [issue.render(source) for issue in self.issues]
        if len(lines) == 1:
            message = lines[0]
        else:
            message = f"{source}: {len(lines)} configuration errors:\n" + "\n".join(
                f"  {line}" for line in lines
            )
        super().__init__(message)


def format_loc(loc: Iterable[str | int]) -> str:
    """A location as a field path: ``workflows.research.tasks[2].deps``.

    Example:
        >>> format_loc(("models", "gpt-4.1", "temperature"))
        'models["gpt-4.1"].temperature'
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def strip_tags(loc: Iterable[str | int]) -> Loc:
    """``loc`` without the union tags pydantic inserts."""
    return tuple(part for part in loc if part not in UNION_TAGS)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _unwrap(tp: Any) -> Any:
    """The model or container type inside Optional/Annotated/Union wrappers."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            arms = [a for a in get_args(tp) if a is not type(None)]
            models = [a for a in map(_unwrap, arms) if _is_model(a)]
            tp = models[0] if models else _unwrap(arms[0])
            return tp
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The schema model that holds the fields at ``loc``, if the path leads to one."""
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


def _message(err: Any, root: type[BaseModel], loc: Loc) -> str:
    kind = err["type"]
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        if model is None:
            return "unknown field"
        known = sorted(model.model_fields)
        close = did_you_mean(str(loc[-1]), known)
        hint = f"; did you mean {close!r}?" if close else ""
        return f"unknown field{hint} (expected one of: {', '.join(known)})"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if msg.startswith("Input should be "):
        msg = "expected " + msg.removeprefix("Input should be ")
    elif msg[:2].istitle():
        msg = msg[0].lower() + msg[1:]
    value = err.get("input")
    if isinstance(value, str | int | float | Decimal | bool) or value is None:
        msg += f", got {_shown(value)}"
    return msg


def issues_from_validation(
    exc: ValidationError,
    root: type[BaseModel],
    *,
    prefix: Loc = (),
    lines: LineFinder | None = None,
) -> list[ConfigIssue]:
    """One :class:`ConfigIssue` per pydantic error, with paths from the document root.

    Args:
        exc: The validation error.
        root: The model that was validated (used to list the expected fields).
        prefix: Location of the validated value inside the document.
        lines: Finds a location's line in the source file.
    """
    issues = []
    for err in exc.errors():
        loc = strip_tags(err["loc"])
        full = prefix + loc
        issues.append(
            ConfigIssue(
                path=format_loc(full),
                message=_message(err, root, loc),
                line=lines(full) if lines is not None else None,
            )
        )
    return issues
