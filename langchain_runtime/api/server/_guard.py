"""The ASGI layer in front of every route: bearer token, body size, request metrics.

It runs before any routing or parsing, so an unauthenticated or oversized request
costs the server nothing more than its headers (and at most ``max_body_bytes`` of
body). The token is compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import TYPE_CHECKING, Any

from langchain_runtime.api.errors import status_for

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from langchain_runtime.api.server._metrics import Metrics

__all__ = ["OPEN_PATHS", "Guard"]

#: Paths served without the token (liveness probes carry no secrets).
OPEN_PATHS = frozenset({"/healthz"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Metric labels take only these methods, so a client can not grow the label set.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


async def send_error(
    send: Send, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status_for(code), "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Pure ASGI middleware: auth, then a bounded body read, then the app."""

    def __init__(
        self, app: ASGIApp, *, token: str | None, max_body_bytes: int, metrics: Metrics
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    def _authorized(self, scope: Scope) -> bool:
        if self.token is None or scope["path"] in OPEN_PATHS:
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    return hmac.compare_digest(credentials.strip(), self.token)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._handle(scope, receive, send_and_record)
        finally:
            route: Any = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.http_request(method, path, status, time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._authorized(scope):
            await send_error(
                send,
                "unauthorized",
                "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
                {"www-authenticate": "Bearer"},
            )
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await send_error(send, "invalid_input", "the Content-Length header is not a number")
                return
            if size > self.max_body_bytes:
                await send_error(send, "payload_too_large", self._too_large(size))
                return
        chunks: list[bytes] = []
        total = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body_bytes:
                await send_error(send, "payload_too_large", self._too_large(total))
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self, size: int) -> str:
        limit = self.max_body_bytes
        return f"the request body ({size} bytes or more) exceeds the limit of {limit} bytes"
