"""Client deadlines against misbehaving servers on loopback (issue 10, finding 3).

A server that trickles one byte at a time used to keep ``get_run(timeout=2)`` and
``RemoteOrchestrator.invoke`` blocked for minutes: timeouts were per read. Every
call now has a deadline; these servers are real sockets, bounded in time.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from langchain_runtime.api import (
    ApiError,
    ApiTimeoutError,
    AsyncRuntimeClient,
    RemoteOrchestrator,
    RuntimeClient,
)

Behaviour = Callable[[socket.socket, threading.Event], None]
SLACK = 1.0  # the bound: a call returns within its timeout + 1 s


def _read_request(sock: socket.socket) -> None:
    data = b""
    sock.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return
        data += chunk


def trickle(sock: socket.socket, stop: threading.Event) -> None:
    """An answer that never finishes: one byte every 0.2 s (for at most 30 s)."""
    _read_request(sock)
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 99\r\n\r\n"
    for i in range(150):
        if stop.wait(0.2):
            return
        sock.sendall(answer[i % len(answer) : i % len(answer) + 1] if i < len(answer) else b" ")


def hang(sock: socket.socket, stop: threading.Event) -> None:
    """Reads the request, then says nothing (for at most 30 s)."""
    _read_request(sock)
    stop.wait(30)


def keepalive_only(sock: socket.socket, stop: threading.Event) -> None:
    """An event stream that only ever sends keep-alive comments."""
    _read_request(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
    for _ in range(150):
        if stop.wait(0.1):
            return
        sock.sendall(b": keep-alive\n\n")


def _answer(body: bytes, content_type: bytes) -> Behaviour:
    def behaviour(sock: socket.socket, stop: threading.Event) -> None:
        _read_request(sock)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type
        sock.sendall(head + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n")
        sock.sendall(body)
        stop.wait(5)

    return behaviour


def huge(sock: socket.socket, stop: threading.Event) -> None:
    """A 50 MB body, sent as fast as the client reads."""
    _read_request(sock)
    size = 50_000_000
    sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ")
    sock.sendall(str(size).encode() + b"\r\n\r\n")
    block = b" " * 65536
    try:
        for _ in range(size // len(block)):
            if stop.is_set():
                return
            sock.sendall(block)
    except OSError:
        return  # the client hung up: what it should do


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], str]]:
    servers: list[tuple[socketserver.ThreadingTCPServer, threading.Event]] = []

    def start(behaviour: Behaviour) -> str:
        stop = threading.Event()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(OSError):
                    behaviour(self.request, stop)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, stop))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, stop in servers:
        stop.set()
        server.shutdown()
        server.server_close()


def _timed(call: Callable[[], object], error: type[BaseException]) -> float:
    started = time.monotonic()
    with pytest.raises(error):
        call()
    return time.monotonic() - started


@pytest.mark.parametrize("behaviour", [trickle, hang], ids=["trickle", "hang"])
def test_sync_calls_end_at_their_deadline(
    serve: Callable[[Behaviour], str], behaviour: Behaviour
) -> None:
    url = serve(behaviour)
    with RuntimeClient(url, timeout=1.0, retries=2) as client:
        assert _timed(lambda: client.get_run("r1"), ApiTimeoutError) < 1.0 + SLACK
        assert _timed(client.health, ApiTimeoutError) < 1.0 + SLACK
        assert _timed(lambda: client.wait("r1", timeout=0.5), ApiTimeoutError) < 0.5 + SLACK


@pytest.mark.anyio
@pytest.mark.parametrize("behaviour", [trickle, hang], ids=["trickle", "hang"])
async def test_async_calls_end_at_their_deadline(
    serve: Callable[[Behaviour], str], behaviour: Behaviour
) -> None:
    url = serve(behaviour)
    async with AsyncRuntimeClient(url, timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError):
            await client.get_run("r1")
        assert time.monotonic() - started < 1.0 + SLACK


def test_remote_orchestrator_invoke_ends_at_its_timeout(serve: Callable[[Behaviour], str]) -> None:
    remote = RemoteOrchestrator(serve(trickle), workflow="research", timeout=1.0)
    assert _timed(lambda: remote.invoke({"topic": "owls"}), ApiTimeoutError) < 1.0 + SLACK


@pytest.mark.parametrize("behaviour", [hang, keepalive_only], ids=["hang", "keepalive"])
def test_an_event_stream_without_events_ends_at_its_idle_timeout(
    serve: Callable[[Behaviour], str], behaviour: Behaviour
) -> None:
    with RuntimeClient(serve(behaviour), timeout=5.0) as client:
        elapsed = _timed(lambda: list(client.events("r1", idle_timeout=1.0)), ApiTimeoutError)
    assert elapsed < 1.0 + SLACK


def test_an_event_stream_ends_at_its_total_timeout(serve: Callable[[Behaviour], str]) -> None:
    with RuntimeClient(serve(keepalive_only), timeout=5.0) as client:
        elapsed = _timed(lambda: list(client.events("r1", timeout=1.0)), ApiTimeoutError)
    assert elapsed < 1.0 + SLACK


def test_a_huge_response_is_refused_while_read(serve: Callable[[Behaviour], str]) -> None:
    client = RuntimeClient(serve(huge), timeout=10.0, max_response_bytes=1_000_000)
    with client, pytest.raises(ApiError, match="larger than 1000000 bytes"):
        client.get_run("r1")


def test_health_on_a_non_json_body_is_an_api_error(serve: Callable[[Behaviour], str]) -> None:
    client = RuntimeClient(serve(_answer(b"<html>proxy</html>", b"text/html")), timeout=5)
    with client, pytest.raises(ApiError, match="not JSON"):
        client.health()
    client = RuntimeClient(serve(_answer(b"[1, 2]", b"application/json")), timeout=5)
    with client, pytest.raises(ApiError, match="expected a JSON object"):
        client.health()


def test_a_malformed_event_is_an_api_error(serve: Callable[[Behaviour], str]) -> None:
    stream = b"id: 0\nevent: run_started\ndata: {not json\n\n"
    client = RuntimeClient(serve(_answer(stream, b"text/event-stream")), timeout=5)
    with client, pytest.raises(ApiError, match="malformed 'run_started' event"):
        list(client.events("r1"))
    wrong = b'id: 0\nevent: run_started\ndata: {"seq": "x"}\n\n'
    client = RuntimeClient(serve(_answer(wrong, b"text/event-stream")), timeout=5)
    with client, pytest.raises(ApiError, match="malformed"):
        list(client.events("r1"))
