"""A uvicorn server in a daemon thread, with bounded start and stop (uvicorn imported on use)."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from langchain_runtime.api.server._limits import ServerLimits

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """uvicorn serving ``app`` from a daemon thread; a context manager.

    Args:
        app: The application (``create_app(...)``).
        host: Address to bind (loopback by default).
        port: Port; 0 picks a free one (see :attr:`url`).
        limits: Header time and connection bounds; default those the app was made with.

    Example:
        >>> server = BackgroundServer(create_app(store=":memory:")).start()  # doctest: +SKIP
        >>> server.url  # doctest: +SKIP
        'http://127.0.0.1:54321'
        >>> server.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: ServerLimits | None = None,
    ) -> None:
        import uvicorn

        from langchain_runtime.api.server import _uvicorn_config

        self.app = app
        config = _uvicorn_config(
            app, limits, host=host, port=port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Start serving; return once the socket accepts connections."""
        self._thread = threading.Thread(target=self._server.run, name="lcr-uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop(timeout=1.0)
                raise RuntimeError(f"uvicorn did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Shut down gracefully (live runs are aborted and saved) within ``timeout``."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(2.0)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
