"""``MemoryManager``: run-scoped memory that tasks write to and read from."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.stores import BaseStore

__all__ = ["MemoryManager", "OnDelete", "OnWrite"]

logger = logging.getLogger(__name__)

#: Called after each key is written, with the key and its new value.
OnWrite = Callable[[str, Any], None]
#: Called after each existing key is deleted, with the key.
OnDelete = Callable[[str], None]


class MemoryManager(BaseStore[str, Any]):
    """Run-scoped memory: a thread-safe, in-memory LangChain ``BaseStore``.

    Any code that takes a ``BaseStore`` can use it; the async methods work directly
    in memory (no executor). Writes keep their order. Values are stored as given
    (not copied); :meth:`snapshot` returns a new dict, so changing the snapshot never
    changes the memory. ``on_write`` and ``on_delete`` are called after the change,
    outside the lock (so they may read the memory), in the order the keys were given; an
    error they raise reaches the writer, and the change stays made.

    Args:
        initial: Entries to start with (``on_write`` is not called for them).
        on_write: Called as ``on_write(key, value)`` after each write.
        on_delete: Called as ``on_delete(key)`` after each key actually deleted.

    Example:
        >>> writes = []
        >>> memory = MemoryManager(on_write=lambda k, v: writes.append(k))
        >>> memory.mset([("facts", ["owls hunt at night"]), ("topic", "owls")])
        >>> memory.get("topic"), memory.get("missing", "n/a")
        ('owls', 'n/a')
        >>> memory.mget(["facts", "missing"])
        [['owls hunt at night'], None]
        >>> sorted(memory.yield_keys(prefix="f")), writes
        (['facts'], ['facts', 'topic'])
        >>> memory.mdelete(["facts"])
        >>> memory.snapshot()
        {'topic': 'owls'}
    """

    def __init__(
        self,
        initial: Mapping[str, Any] | None = None,
        *,
        on_write: OnWrite | None = None,
        on_delete: OnDelete | None = None,
    ) -> None:
        self._data: dict[str, Any] = dict(initial or {})
        self._lock = threading.Lock()
        self.on_write = on_write
        self.on_delete = on_delete

    def __repr__(self) -> str:
        with self._lock:
            keys = list(self._data)
        return f"MemoryManager(keys={keys!r})"

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    # ------------------------------------------------------------------ reading
    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is not set."""
        with self._lock:
            return self._data.get(key, default)

    def snapshot(self) -> dict[str, Any]:
        """A copy of every entry, in write order (the values themselves are shared)."""
        with self._lock:
            return dict(self._data)

    def mget(self, keys: Sequence[str]) -> list[Any | None]:
        """The values of ``keys``, None for each key that is not set."""
        with self._lock:
            return [self._data.get(key) for key in keys]

    async def amget(self, keys: Sequence[str]) -> list[Any | None]:
        """Async :meth:`mget`."""
        return self.mget(keys)

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        """The keys (those starting with ``prefix``, if given) as of the call."""
        with self._lock:
            keys = list(self._data)
        for key in keys:
            if prefix is None or key.startswith(prefix):
                yield key

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        """Async :meth:`yield_keys`."""
        for key in self.yield_keys(prefix=prefix):
            yield key

    # ------------------------------------------------------------------ writing
    def mset(self, key_value_pairs: Sequence[tuple[str, Any]]) -> None:
        """Set each key to its value, then report each write to ``on_write``."""
        pairs = list(key_value_pairs)
        for key, _ in pairs:
            if not isinstance(key, str):
                raise TypeError(f"memory keys are strings, not {type(key).__name__}")
        with self._lock:
            self._data.update(pairs)
        if self.on_write is not None:
            for key, value in pairs:
                self.on_write(key, value)
        logger.debug("memory: wrote %s", [key for key, _ in pairs])

    async def amset(self, key_value_pairs: Sequence[tuple[str, Any]]) -> None:
        """Async :meth:`mset`."""
        self.mset(key_value_pairs)

    def mdelete(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` (missing keys are ignored), then report each to ``on_delete``."""
        with self._lock:
            deleted = [key for key in keys if self._data.pop(key, _MISSING) is not _MISSING]
        if self.on_delete is not None:
            for key in deleted:
                self.on_delete(key)
        logger.debug("memory: deleted %s", deleted)

    async def amdelete(self, keys: Sequence[str]) -> None:
        """Async :meth:`mdelete`."""
        self.mdelete(keys)


_MISSING = object()
