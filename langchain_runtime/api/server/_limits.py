"""What one request may ask of the server, and which clients may ask at all.

Three kinds of bounds live here, all checked before a request does any work:

- **Who**: the ``Host`` header must name an allowed host (loopback names by
  default), so a web page that rebinds its domain to ``127.0.0.1`` is refused; and a
  browser's cross-origin request (``Origin``, ``Sec-Fetch-Site``) may not change
  anything.
- **Shape**: a JSON body nested deeper than ``max_json_depth`` or holding a lone
  UTF-16 surrogate (``"\\ud800"``, which no text encoding can carry) is refused.
- **Work**: tasks per run, characters per prompt and parallelism per run are capped;
  the limit is named in the error.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

from langchain_runtime.errors import ConfigurationError

__all__ = [
    "LOOPBACK_HOSTS",
    "ServerLimits",
    "check_json",
    "cross_origin",
    "host_allowed",
    "host_of",
    "parse_limits",
]

#: Host names allowed when ``allowed_hosts`` is not given (any ``*.localhost`` and
#: loopback address too).
LOOPBACK_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
#: The host name of Starlette's in-process ``TestClient``: no browser reaches it
#: through DNS, so serving it by default opens nothing.
TEST_CLIENT_HOST = "testserver"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on what a request may ask (``serve --limit NAME=VALUE`` sets them).

    Attributes:
        max_json_depth: Deepest nesting of arrays/objects in a request body (400).
        max_tasks: Most tasks in one run, submitted or added later (413).
        max_prompt_chars: Longest prompt of a request's task (413).
        max_parallelism: Highest ``policy.max_parallelism`` a request may ask (422).
        header_timeout: Seconds a connection may take to send a request's headers
            (then it is closed).
        body_timeout: Seconds a request may take to send its body (408).
        max_connections: Most open connections; past it the oldest one still
            sending its headers is closed. ``0``: two thirds of the process's
            file-descriptor limit (less a reserve and the listen backlog), at most 1000.

    Example:
        >>> ServerLimits(max_tasks=50).max_tasks
        50
        >>> parse_limits(["max_tasks=200", "body_timeout=5"]).body_timeout
        5.0
    """

    max_json_depth: int = 32
    max_tasks: int = 1000
    max_prompt_chars: int = 100_000
    max_parallelism: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float":
                ok, want = isinstance(value, int | float) and value > 0, "> 0"
            else:
                least = 0 if f.name == "max_connections" else 1
                ok, want = isinstance(value, int) and value >= least, f">= {least}"
            if isinstance(value, bool) or not ok:
                raise ConfigurationError(
                    f"server limit {f.name}: expected a number {want}, got {value!r}"
                )


_LIMIT_TYPES = {f.name: f.type for f in fields(ServerLimits)}


def parse_limits(pairs: Iterable[str], base: ServerLimits | None = None) -> ServerLimits:
    """``NAME=VALUE`` pairs (``serve --limit``) over ``base`` (the defaults).

    Raises:
        ConfigurationError: An unknown name or a value that is not a positive number.
    """
    changes: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in _LIMIT_TYPES:
            known = ", ".join(_LIMIT_TYPES)
            raise ConfigurationError(
                f"--limit {pair!r}: expected NAME=VALUE with NAME one of {known}"
            )
        try:
            value: float = int(text) if _LIMIT_TYPES[name] == "int" else float(text)
        except ValueError:
            raise ConfigurationError(f"--limit {pair!r}: {text!r} is not a number") from None
        changes[name] = value
    return replace(base or ServerLimits(), **changes)


# -- who may ask ----------------------------------------------------------------------
def host_of(value: str) -> str:
    """The host part of a ``Host`` header value, lower case (``[::1]:80`` -> ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host: str, allowed: Sequence[str] | None) -> bool:
    """Whether a request's host (see :func:`host_of`) may be served.

    ``allowed`` None means loopback names only (and ``testserver``, the in-process
    test client's); ``"*"`` allows any host;
    ``"*.example.com"`` any subdomain of ``example.com``.
    """
    if allowed is None:
        return _is_loopback(host) or host == TEST_CLIENT_HOST
    for pattern in allowed:
        pattern = pattern.strip().lower()
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if pattern in ("localhost", "127.0.0.1", "::1") and _is_loopback(host):
            return True
    return False


def cross_origin(headers: Mapping[bytes, bytes], host: str) -> str | None:
    """Why a browser request comes from another site, or None when it does not.

    A browser sends ``Sec-Fetch-Site`` (modern ones) and ``Origin`` with every
    cross-origin request; clients that are not browsers send neither.
    """
    site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {site}"
    raw = headers.get(b"origin")
    if raw is None:
        return None
    origin = raw.decode("latin-1").strip()
    if origin.lower() == "null":
        return "Origin: null"
    netloc = urlsplit(origin).netloc
    if not netloc or netloc.lower() != host:
        return f"Origin: {origin}"
    return None


# -- the shape of a body -------------------------------------------------------------------
def check_json(body: bytes, max_depth: int) -> str | None:
    """What is wrong with a JSON body's shape, or None (also None for invalid JSON,
    which the application reports with its own message)."""
    try:
        data = json.loads(body)
    except RecursionError:
        return f"the JSON body is nested deeper than {max_depth} levels, the most accepted here"
    except ValueError:
        return None
    stack: list[tuple[Any, int, str]] = [(data, 0, "body")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return f"{where}: a string holds a lone UTF-16 surrogate (e.g. \\ud800), not text"
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= max_depth:
            return (
                f"{where}: the JSON body is nested deeper than {max_depth} levels, the most "
                "accepted here"
            )
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return f"{where}: a key holds a lone UTF-16 surrogate (e.g. \\ud800), not text"
                stack.append((item, depth + 1, f"{where}.{key}"[:200]))
        else:
            stack.extend((item, depth + 1, f"{where}[{i}]"[:200]) for i, item in enumerate(value))
    return None


# -- the work of a request -------------------------------------------------------------------
def check_work(
    limits: ServerLimits, *, tasks: Sequence[Any] = (), max_parallelism: int | None = None
) -> None:
    """Refuse a request asking for more work than the server allows.

    Args:
        limits: The server's limits.
        tasks: The request's task specs (each with a ``prompt``).
        max_parallelism: The parallelism the request asks for, if any.

    Raises:
        PayloadTooLargeError: Too many tasks or too long a prompt (413).
        ConfigurationError: More parallelism than allowed (422).
    """
    from langchain_runtime.api.errors import PayloadTooLargeError

    if len(tasks) > limits.max_tasks:
        raise PayloadTooLargeError(
            f"tasks: {len(tasks)} tasks exceed this server's limit of {limits.max_tasks} per run "
            "(serve --limit max_tasks=N)"
        )
    for i, spec in enumerate(tasks):
        size = len(spec.prompt)
        if size > limits.max_prompt_chars:
            raise PayloadTooLargeError(
                f"tasks[{i}].prompt: {size} characters exceed this server's limit of "
                f"{limits.max_prompt_chars} (serve --limit max_prompt_chars=N)"
            )
    if max_parallelism is not None and max_parallelism > limits.max_parallelism:
        raise ConfigurationError(
            f"policy.max_parallelism: {max_parallelism} is above this server's limit of "
            f"{limits.max_parallelism} (serve --limit max_parallelism=N)"
        )
