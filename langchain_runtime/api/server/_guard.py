"""The ASGI layer in front of every route: host, origin, token, body, request metrics.

It runs before any routing or parsing, so a refused request costs the server
nothing more than its headers (and at most ``max_body_bytes`` of body, read within
``body_timeout``). In order: the ``Host`` must be allowed (loopback names by
default: a DNS-rebinding guard); a browser's cross-origin request may not use a
method that changes anything; the bearer token (compared in constant time); then
the body, whose JSON must not nest deeper than ``max_json_depth`` nor hold lone
surrogates (see :mod:`._limits`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_runtime.api.errors import status_for
from langchain_runtime.api.server._limits import (
    ServerLimits,
    check_json,
    cross_origin,
    host_allowed,
    host_of,
)

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from langchain_runtime.api.server._keys import KeyRing
    from langchain_runtime.api.server._metrics import Metrics

__all__ = ["OPEN_PATHS", "PRINCIPAL", "Guard"]

#: The ASGI scope key under which an API-key request carries its ``Principal``.
PRINCIPAL = "langchain_runtime.principal"

#: Paths served without the token (liveness probes carry no secrets).
OPEN_PATHS = frozenset({"/healthz"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
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
        self,
        app: ASGIApp,
        *,
        token: str | None,
        max_body_bytes: int,
        metrics: Metrics,
        allowed_hosts: Sequence[str] | None = None,
        limits: ServerLimits | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        if keys is not None and token:
            raise ValueError("give a token or api keys, not both")
        self.app = app
        self.keys = keys
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.allowed_hosts = tuple(allowed_hosts) if allowed_hosts is not None else None
        self.limits = limits or ServerLimits()

    def _refusal(self, scope: Scope) -> str | None:
        """Why this client may not ask (a foreign host, a cross-origin write), or None."""
        headers = dict(scope["headers"])
        raw = headers.get(b"host", b"").decode("latin-1")
        host = host_of(raw)
        if scope["path"] not in OPEN_PATHS and not host_allowed(host, self.allowed_hosts):
            return (
                f"host {raw!r} is not served here (only loopback names by default, against "
                f"DNS rebinding); start the server with --allowed-hosts {host or 'NAME'} "
                "to allow it"
            )
        if scope["method"] not in _SAFE_METHODS:
            why = cross_origin(headers, raw.strip().lower())
            if why is not None:
                return f"a cross-origin browser request may not {scope['method']} here ({why})"
        return None

    def _authorized(self, scope: Scope) -> bool:
        if scope["path"] in OPEN_PATHS or (self.token is None and self.keys is None):
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() != b"bearer":
                    return False
                if self.keys is not None:  # api keys: who is asking rides along
                    principal = self.keys.identify(credentials.strip())
                    scope[PRINCIPAL] = principal
                    return principal is not None
                assert self.token is not None
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
        refusal = self._refusal(scope)
        if refusal is not None:
            await send_error(send, "forbidden", refusal)
            return
        if not self._authorized(scope):
            await send_error(
                send,
                "unauthorized",
                "missing or wrong bearer token (send 'Authorization: Bearer <token>')"
                if self.keys is None
                else "missing or unknown API key (send 'Authorization: Bearer <key>')",
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
        deadline = time.monotonic() + self.limits.body_timeout
        try:
            while more:
                left = deadline - time.monotonic()
                message = await asyncio.wait_for(receive(), max(left, 0.0))
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                total += len(chunk)
                if total > self.max_body_bytes:
                    await send_error(send, "payload_too_large", self._too_large(total))
                    return
                chunks.append(chunk)
                more = bool(message.get("more_body", False))
        except asyncio.TimeoutError:
            await send_error(
                send,
                "request_timeout",
                f"the request body was not received within {self.limits.body_timeout:g}s",
                {"connection": "close"},
            )
            return
        body = b"".join(chunks)
        problem = check_json(body, self.limits.max_json_depth) if body else None
        if problem is not None:
            await send_error(send, "invalid_input", problem)
            return
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
