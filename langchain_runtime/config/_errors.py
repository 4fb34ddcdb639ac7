"""Configuration errors that name the file, the line, the field path and what was expected."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from langchain_runtime._fields import did_you_mean, model_at, unknown_field_message
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


def _message(err: Any, root: type[BaseModel], loc: Loc) -> str:
    kind = err["type"]
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        model = model_at(root, loc[:-1])
        return unknown_field_message(str(loc[-1]), model.model_fields if model else ())
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
