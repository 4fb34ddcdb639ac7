"""``MemoryManager``: run-scoped memory that tasks write to and read from."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.stores import BaseStore

__all__ = ["MemoryManager", "MemoryScope", "OnDelete", "OnWrite", "StagedMemory"]

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


class StagedMemory(BaseStore[str, Any]):
    """One task's view of run memory: reads see the run's memory plus the task's own
    writes; the writes are staged and reach the run's memory only when the task is
    committed (in task-id order in batched runs), and only if it completed.

    This is what :func:`~langchain_runtime.context.current_memory` returns inside a
    task, so memory, like outputs, does not depend on which task finished first.

    Example:
        >>> run_memory = MemoryManager({"topic": "owls"})
        >>> mine = StagedMemory(run_memory)
        >>> mine.mset([("note", "hunts at night")])
        >>> mine.get("note"), run_memory.get("note")
        ('hunts at night', None)
        >>> mine.commit()
        >>> run_memory.get("note")
        'hunts at night'
    """

    def __init__(self, base: MemoryManager) -> None:
        self._base = base
        self._lock = threading.Lock()
        self._writes: dict[str, Any] = {}
        self._deleted: set[str] = set()

    def __repr__(self) -> str:
        return f"StagedMemory(staged={sorted(self._writes)}, deleted={sorted(self._deleted)})"

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` as this task sees it, or ``default``."""
        with self._lock:
            if key in self._writes:
                return self._writes[key]
            if key in self._deleted:
                return default
        return self._base.get(key, default)

    def snapshot(self) -> dict[str, Any]:
        """Everything this task sees, as a new dict."""
        view = self._base.snapshot()
        with self._lock:
            for key in self._deleted:
                view.pop(key, None)
            view.update(self._writes)
        return view

    def mget(self, keys: Sequence[str]) -> list[Any | None]:
        return [self.get(k) for k in keys]

    async def amget(self, keys: Sequence[str]) -> list[Any | None]:
        return self.mget(keys)

    def mset(self, key_value_pairs: Sequence[tuple[str, Any]]) -> None:
        with self._lock:
            for key, value in key_value_pairs:
                if not isinstance(key, str):
                    raise TypeError(f"memory keys must be strings, got {type(key).__name__}")
                self._writes[key] = value
                self._deleted.discard(key)

    async def amset(self, key_value_pairs: Sequence[tuple[str, Any]]) -> None:
        self.mset(key_value_pairs)

    def mdelete(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._writes.pop(key, None)
                self._deleted.add(key)

    async def amdelete(self, keys: Sequence[str]) -> None:
        self.mdelete(keys)

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        for key in self.snapshot():
            if prefix is None or key.startswith(prefix):
                yield key

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        for key in self.yield_keys(prefix=prefix):
            yield key

    def pending_writes(self) -> dict[str, Any]:
        """The writes :meth:`commit` would apply (a copy)."""
        with self._lock:
            return dict(self._writes)

    def commit(self) -> None:
        """Apply the staged writes and deletes to the run's memory."""
        with self._lock:
            writes, deleted = list(self._writes.items()), sorted(self._deleted)
            self._writes, self._deleted = {}, set()
        if writes:
            self._base.mset(writes)
        if deleted:
            self._base.mdelete(deleted)


class MemoryScope:
    """A run's memory and its tasks' staged views, created when a task first asks.

    Most tasks never touch memory, so no view is made for them.
    """

    def __init__(self, base: MemoryManager) -> None:
        self.base = base
        self._lock = threading.Lock()
        self._views: dict[str, StagedMemory] = {}

    def view(self, task_id: str) -> StagedMemory:
        """The staged view of ``task_id`` (made on first use)."""
        with self._lock:
            found = self._views.get(task_id)
            if found is None:
                found = self._views[task_id] = StagedMemory(self.base)
            return found

    def pop(self, task_id: str) -> StagedMemory | None:
        """Take the task's view, if it made one (to commit or drop it)."""
        with self._lock:
            return self._views.pop(task_id, None)
