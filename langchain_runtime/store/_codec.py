"""How task outputs and memory values are written to a run store, and read back.

:func:`encode` turns a value into JSON-able data; :func:`decode` gives back an
equal value. What can be stored:

* plain JSON data (``dict`` with ``str`` keys, ``list``, ``str``, ``int``,
  ``float``, ``bool``, ``None``, nested) is stored as itself. Tuples are stored as
  lists (as :func:`json.dumps` does); non-finite floats and :class:`~decimal.Decimal`
  are tagged so they come back as they were;
* LangChain messages and documents (anywhere inside such data) through LangChain's
  own serializers: a message as :func:`langchain_core.messages.message_to_dict`
  writes it (its fields checked to be JSON data), a document (or any other
  allowlisted class) through :func:`langchain_core.load.dumpd`; ids, tool calls and
  ``usage_metadata`` included;
* pydantic models (a structured output) as ``model_dump(mode="json")`` and their
  class path.

Anything else (a socket, a function, a custom object, a LangChain object that is
neither a message nor a document) raises :class:`OutputNotStorableError` naming what
was being stored and the type, at commit, never a silent loss.

Reading is a security boundary: a store file never makes this process import a
module. LangChain objects are revived only from an allowlist (the message classes
and ``Document``); a pydantic model only if its class is already imported (its
module is in :data:`sys.modules`) and it is not a LangChain object or a Runnable.

Example:
    >>> from langchain_core.messages import AIMessage
    >>> blob = encode({"answer": AIMessage("hi", id="m1"), "n": 3}, what="task 'a' output")
    >>> decode(blob)["answer"].content, decode(blob)["n"]
    ('hi', 3)
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from langchain_runtime.errors import OutputNotStorableError, StoreError

if TYPE_CHECKING:
    from langchain_core.load.load import Reviver

__all__ = ["decode", "encode"]

#: Tags of the values that are not plain JSON. A plain dict that has a key
#: starting with ``$`` is wrapped in ``{"$dict": ...}`` so it is never read as one.
_LC = "$lc"
_MSG = "$msg"
_MODEL = "$model"
_FLOAT = "$float"
_DECIMAL = "$decimal"
_DICT = "$dict"
_MAX_DEPTH = 200
_LC_ESCAPED = "__lc_escaped__"


@cache
def _messages() -> dict[type[Any], str]:
    """The message classes written with ``message_to_dict``, and their ``type``."""
    import langchain_core.messages as m

    classes = (
        m.AIMessage, m.AIMessageChunk, m.HumanMessage, m.HumanMessageChunk, m.SystemMessage,
        m.SystemMessageChunk, m.ToolMessage, m.ToolMessageChunk, m.ChatMessage,
        m.ChatMessageChunk, m.FunctionMessage, m.FunctionMessageChunk, m.RemoveMessage,
    )  # fmt: skip
    return {cls: str(cls.model_fields["type"].default) for cls in classes}


@cache
def _allowed() -> tuple[tuple[type[Any], ...], Reviver]:
    """The LangChain classes a store may hold, and a reviver limited to them."""
    import langchain_core.messages as m
    from langchain_core.documents import Document
    from langchain_core.load.load import Reviver

    classes: tuple[type[Any], ...] = (
        m.AIMessage,
        m.AIMessageChunk,
        m.HumanMessage,
        m.HumanMessageChunk,
        m.SystemMessage,
        m.SystemMessageChunk,
        m.ToolMessage,
        m.ToolMessageChunk,
        m.ChatMessage,
        m.ChatMessageChunk,
        m.FunctionMessage,
        m.FunctionMessageChunk,
        m.RemoveMessage,
        Document,
    )
    return classes, Reviver(allowed_objects=classes)


def _type_name(value: Any) -> str:
    cls = type(value)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _refuse(what: str, where: str, value: Any, why: str = "") -> OutputNotStorableError:
    at = f" at {where}" if where else ""
    why = why or (
        "a run store keeps JSON data, LangChain messages and documents, and pydantic models"
    )
    return OutputNotStorableError(f"{what} cannot be stored: {_type_name(value)}{at}; {why}")


def encode(value: Any, *, what: str) -> Any:
    """``value`` as JSON-able data :func:`decode` reads back.

    Args:
        value: A task output or a memory value.
        what: What it is, for the error (``"task 'draft' output"``).

    Raises:
        OutputNotStorableError: ``value`` (or something inside it) cannot be stored;
            the message names ``what``, where inside the value, and the type.
    """
    return _encode(value, what, "", 0)


def _encode(value: Any, what: str, where: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise _refuse(what, where, value, f"it is nested more than {_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (str, bool, int)):
        if type(value) not in (str, bool, int, type(None)):
            # an int/str subclass (an Enum, a numpy-free IntFlag...) would come back as
            # its base type: refuse rather than change it
            raise _refuse(what, where, value)
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {_FLOAT: repr(value)}
    if type(value) is Decimal:
        return {_DECIMAL: str(value)}
    if type(value) is dict:
        out: dict[str, Any] = {}
        tag = False
        for key, item in value.items():
            if type(key) is not str:
                raise _refuse(
                    what, where, value, f"its key {key!r} is a {_type_name(key)}, not a str"
                )
            tag = tag or key.startswith("$")
            out[key] = _encode(item, what, f"{where}[{key!r}]", depth + 1)
        return {_DICT: out} if tag else out
    if type(value) in (list, tuple):
        return [_encode(item, what, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    kind = _messages().get(type(value))
    if kind is not None:  # a subclass is not one of these: it goes through the allowlist
        inside = f"{where}.{type(value).__name__}" if where else type(value).__name__
        data = _encode(value.model_dump(), what, inside, depth + 1)
        return {_MSG: kind, "data": data}
    classes, _ = _allowed()
    if type(value) in classes:
        return {_LC: _dump_lc(value, what, where)}
    from langchain_core.load import Serializable
    from langchain_core.runnables import Runnable

    if isinstance(value, BaseModel) and not isinstance(value, (Serializable, Runnable)):
        cls = type(value)
        if "<locals>" in cls.__qualname__:
            raise _refuse(
                what, where, value, "a class defined inside a function cannot be found again"
            )
        try:
            data = value.model_dump(mode="json")
        except Exception as exc:  # pydantic's serialization errors vary
            raise _refuse(what, where, value, f"it does not dump to JSON ({exc})") from exc
        _check_finite(data, what, where, value)
        return {_MODEL: f"{cls.__module__}:{cls.__qualname__}", "data": data}
    raise _refuse(what, where, value)


def _check_finite(data: Any, what: str, where: str, value: Any) -> None:
    """A dumped model or LangChain object with NaN/inf inside cannot be stored as JSON."""
    try:
        json.dumps(data, allow_nan=False)
    except ValueError:
        raise _refuse(what, where, value, "it holds a NaN or infinite float") from None
    except TypeError as exc:
        raise _refuse(what, where, value, f"it does not dump to JSON ({exc})") from None


def _dump_lc(value: Any, what: str, where: str) -> Any:
    from langchain_core.load import dumpd

    dumped = dumpd(value)
    _check_finite(dumped, what, where, value)
    _, reviver = _allowed()
    allowed = reviver.allowed_class_paths or set()

    def check(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                check(item)
        elif isinstance(node, dict):
            if len(node) == 1 and _LC_ESCAPED in node:
                return  # user data, returned as is on reading
            if node.get("lc") == 1 and node.get("type") == "not_implemented":
                name = ".".join(str(p) for p in node.get("id", ()))
                raise _refuse(
                    what, where, value, f"it holds a {name or 'value'} LangChain cannot serialize"
                )
            if node.get("lc") == 1 and node.get("type") == "secret":
                raise _refuse(what, where, value, "it holds a secret")
            if (
                node.get("lc") == 1
                and node.get("type") == "constructor"
                and tuple(node.get("id", ())) not in allowed
            ):
                name = ".".join(str(p) for p in node.get("id", ()))
                raise _refuse(what, where, value, f"it holds a {name}")
            for item in node.values():
                check(item)

    check(dumped)
    return dumped


def decode(blob: Any) -> Any:
    """The value :func:`encode` stored as ``blob``.

    Raises:
        StoreError: ``blob`` names a LangChain class outside the allowlist, a model
            class that is not imported, or is not something :func:`encode` wrote.
    """
    return _decode(blob, 0)


def _decode(blob: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise StoreError(f"stored value is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(blob, list):
        return [_decode(item, depth + 1) for item in blob]
    if not isinstance(blob, dict):
        return blob
    if len(blob) == 1 or (len(blob) == 2 and "data" in blob):
        key = next(iter(blob))
        if key == _DICT:
            return {k: _decode(v, depth + 1) for k, v in blob[_DICT].items()}
        if key == _LC:
            return _revive(blob[_LC])
        if key == _FLOAT:
            return float(blob[_FLOAT])
        if key == _DECIMAL:
            return Decimal(blob[_DECIMAL])
        if _MODEL in blob:
            return _model(blob[_MODEL], blob.get("data"))
        if _MSG in blob:
            return _message(blob[_MSG], _decode(blob["data"], depth + 1))
    if any(k.startswith("$") for k in blob):
        raise StoreError(f"stored value has an unknown tag: {sorted(blob)[:3]}")
    return {k: _decode(v, depth + 1) for k, v in blob.items()}


def _revive(data: Any) -> Any:
    _, reviver = _allowed()

    def walk(node: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise StoreError(f"stored LangChain value is nested more than {_MAX_DEPTH} levels")
        if isinstance(node, list):
            return [walk(item, depth + 1) for item in node]
        if isinstance(node, dict):
            if len(node) == 1 and _LC_ESCAPED in node:
                return node[_LC_ESCAPED]
            return reviver({k: walk(v, depth + 1) for k, v in node.items()})
        return node

    try:
        return walk(data, 0)
    except StoreError:
        raise
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise StoreError(f"stored LangChain value cannot be read: {exc}") from exc


def _message(kind: Any, data: Any) -> Any:
    from langchain_core.messages import messages_from_dict

    if kind not in _messages().values() or not isinstance(data, dict):
        raise StoreError(f"stored value is a message of an unknown type {kind!r}")
    try:
        return messages_from_dict([{"type": kind, "data": data}])[0]
    except (ValueError, TypeError) as exc:
        raise StoreError(f"stored {kind} message cannot be read: {exc}") from exc


def _model(path: Any, data: Any) -> Any:
    module, _, qualname = str(path).partition(":")
    mod = sys.modules.get(module)
    target: Any = mod
    for part in qualname.split("."):
        target = getattr(target, part, None) if target is not None else None
    from langchain_core.load import Serializable
    from langchain_core.runnables import Runnable

    if not (
        isinstance(target, type)
        and issubclass(target, BaseModel)
        and not issubclass(target, (Serializable, Runnable))
    ):
        raise StoreError(
            f"stored value is a {path} model, but no such pydantic model is imported; "
            f"import {module} before reading the run"
        )
    validate: Callable[[Any], Any] = target.model_validate
    try:
        return validate(data)
    except Exception as exc:  # a changed model class
        raise StoreError(f"stored {path} model no longer validates: {exc}") from exc
