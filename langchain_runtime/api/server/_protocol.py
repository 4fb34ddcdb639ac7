"""uvicorn's h11 protocol with the bounds it lacks: header time and connection count.

uvicorn times out only idle keep-alive connections: a client that sends part of a
request's headers holds its connection (and a file descriptor) for as long as it
likes, so a few hundred of them exhaust the process's descriptors and nobody else
is served. :func:`guarded_protocol` makes a protocol class that

- closes a connection that has not sent a complete request head within
  ``header_timeout`` seconds (the body's own time is bounded in the application,
  see ``_guard``);
- keeps at most ``max_connections`` connections open: past it, the oldest one
  still waiting for its request head is closed (else the newest), so new clients
  are served while an attack goes on; with the listen backlog of
  :func:`connection_budget` this stays within the process's descriptor limit;
- reports running out of file descriptors once per episode, not once per accept.

uvicorn is imported when :func:`guarded_protocol` is called, never at import time.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import weakref
from typing import Any

__all__ = ["connection_budget", "guarded_protocol", "quiet_fd_exhaustion"]

logger = logging.getLogger(__name__)

_FD_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# per loop: whether it is out of descriptors now (so it is reported once)
_EXHAUSTED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[bool]] = (
    weakref.WeakKeyDictionary()
)


#: Descriptors kept for the process itself (modules, the store, the event loop).
_RESERVE = 64


def connection_budget(max_connections: int) -> tuple[int, int]:
    """The connection cap and the listen backlog, within the descriptor limit.

    asyncio accepts up to ``backlog`` connections in one go before a closed one
    frees its descriptor, so the cap plus the backlog must fit the limit (less a
    reserve). ``max_connections`` 0: two thirds of that room, at most 1000.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = 1_000_000 if soft == resource.RLIM_INFINITY else max(48, soft - _RESERVE)
    cap = max_connections if max_connections > 0 else max(16, min(1000, room * 2 // 3))
    backlog = max(16, min(2048, room - cap))
    return cap, backlog


def quiet_fd_exhaustion(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop`` log "out of file descriptors" once until a connection is accepted.

    asyncio reports every failed ``accept()`` with a traceback; under a flood that is
    a line per attempt. Other exceptions go to the previous handler.
    """
    if loop in _EXHAUSTED:
        return
    previous = loop.get_exception_handler()
    flag = _EXHAUSTED[loop] = [False]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _FD_ERRNOS:
            if not flag[0]:
                flag[0] = True
                logger.error(
                    "the server ran out of file descriptors (%s); new connections wait "
                    "until some close (reported once until it recovers)",
                    exc.strerror or exc,
                )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def _note_recovered(loop: asyncio.AbstractEventLoop) -> None:
    flag = _EXHAUSTED.get(loop)
    if flag is not None:
        flag[0] = False


def guarded_protocol(header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's ``H11Protocol`` with these bounds (pass it as ``http=``)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    cap, _ = connection_budget(max_connections)

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _waiting_since: float = 0.0
        _served: object = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            quiet_fd_exhaustion(self.loop)
            _note_recovered(self.loop)
            self._await_head()
            if len(self.connections) > cap:
                self._evict()

        def _await_head(self) -> None:
            self._stop_timer()
            self._waiting_since = self.loop.time()
            self._head_timer = self.loop.call_later(header_timeout, self._head_too_slow)

        def _stop_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                logger.debug("closing %s: no request head within %ss", self.client, header_timeout)
                self.transport.close()

        def _evict(self) -> None:
            waiting = [
                c
                for c in self.connections
                if isinstance(c, GuardedH11Protocol) and c._head_timer is not None
            ]
            victim = min(waiting, key=lambda c: c._waiting_since) if waiting else self
            logger.warning(
                "%d connections open, the most allowed; closing %s", len(self.connections) - 1,
                "the oldest still sending its request head" if waiting else "the newest",
            )  # fmt: skip
            victim._stop_timer()
            victim.transport.close()

        def _head_arrived(self) -> bool:
            # a complete request head makes a new cycle: from then on its time is the app's
            if self.cycle is not None and self.cycle is not self._served:
                self._served = self.cycle
                self._stop_timer()
                return True
            return False

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._head_arrived()

        def on_response_complete(self) -> None:
            super().on_response_complete()  # may start a pipelined request
            if not self._head_arrived() and not self.transport.is_closing():
                self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_timer()
            super().connection_lost(exc)

    return GuardedH11Protocol
