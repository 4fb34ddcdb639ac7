"""Server-sent events: writing them (server) and parsing them line by line (client).

Only what the run event stream uses: ``id``, ``event``, ``data`` (one or more
lines), comments (``: keep-alive``) and the blank line that ends a message.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["END_EVENT", "SSEMessage", "SSEParser", "format_comment", "format_event"]

#: The last message of a run's stream: the run has ended and every event was sent.
END_EVENT = "end"


@dataclass(frozen=True)
class SSEMessage:
    """One dispatched message."""

    event: str
    data: str
    id: str | None = None


def format_event(event: str, data: str, id: str | int | None = None) -> str:
    """One message, ready to write (``data`` may hold newlines)."""
    head = f"id: {id}\n" if id is not None else ""
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"{head}event: {event}\n{body}\n"


def format_comment(text: str = "keep-alive") -> str:
    """A comment line: keeps a quiet connection alive, ignored by parsers."""
    return f": {text}\n\n"


class SSEParser:
    """Feeds lines (without their line ending) and returns each finished message.

    Example:
        >>> p = SSEParser()
        >>> [p.feed(line) for line in ["id: 3", "event: task_completed", 'data: {"a": 1}', ""]][-1]
        SSEMessage(event='task_completed', data='{"a": 1}', id='3')
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        #: The id of the last message that carried one (for ``Last-Event-ID``).
        self.last_id: str | None = None

    def feed(self, line: str) -> SSEMessage | None:
        if not line:
            if not self._data and not self._event:
                return None
            msg = SSEMessage(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], None
            return msg
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
            self.last_id = value
        return None
