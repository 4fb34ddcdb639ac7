"""Slow and half-sent requests on a real loopback socket (issue 10, finding 2).

uvicorn alone never times out a request's headers or body: a few hundred clients
that send part of a request held every file descriptor and nobody else was served.
Bounded here: at most 300 sockets, every wait has a timeout, loopback only.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="the server tests need the 'server' extra")

from langchain_runtime.api.server import ServerLimits, create_app, serve_in_thread
from langchain_runtime.api.server._protocol import quiet_fd_exhaustion
from langchain_runtime.api.store import MemoryRunStore

ROOT = Path(__file__).resolve().parents[2]
PARTIAL_HEAD = b"POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _connect(port: int, payload: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(payload)
    return s


@pytest.fixture
def fd_limited_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The sidecar in a child process limited to 256 file descriptors (as in the review)."""
    port = _free_port()
    log = tmp_path / "server.log"
    script = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        from langchain_runtime.api.server import serve
        serve(port={port}, store=":memory:", log_level="warning")
        """
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the server did not start: {log.read_text()}")
                time.sleep(0.1)
            yield port, log
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_healthz_answers_under_300_half_sent_requests(fd_limited_server: tuple[int, Path]) -> None:
    port, log = fd_limited_server
    held = []
    try:
        for _ in range(300):
            held.append(_connect(port, PARTIAL_HEAD))
        # answered within 1 s, while all 300 are still connected (more than the fd limit)
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/runs", timeout=1.0)
        assert r.status_code == 200
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)
    assert log.read_text().count("Too many open files") <= 1


@pytest.fixture
def quick_server() -> Iterator[str]:
    limits = ServerLimits(header_timeout=0.5, body_timeout=0.5)
    app = create_app(store=MemoryRunStore(), limits=limits)
    with serve_in_thread(app) as server:
        yield server.url


def test_a_request_head_that_never_ends_is_closed(quick_server: str) -> None:
    port = int(quick_server.rsplit(":", 1)[1])
    with _connect(port, PARTIAL_HEAD) as s:
        s.settimeout(5)
        assert s.recv(100) == b""  # closed by the server, not by the 5 s timeout here


def test_a_body_that_never_ends_gets_a_408(quick_server: str) -> None:
    port = int(quick_server.rsplit(":", 1)[1])
    head = (
        b"POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"workflow":'
    )
    with _connect(port, head) as s:
        s.settimeout(5)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(1000)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer
    # a quick client on a keep-alive connection is not cut off between requests
    with httpx.Client(base_url=quick_server, timeout=5) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200


def test_running_out_of_descriptors_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        quiet_fd_exhaustion(loop)
        exc = OSError(errno.EMFILE, "Too many open files")
        with caplog.at_level(logging.ERROR):
            for _ in range(50):
                loop.call_exception_handler(
                    {"message": "socket.accept() out of system resource", "exception": exc}
                )
        records = [r for r in caplog.records if "file descriptors" in r.getMessage()]
        assert len(records) == 1 and "Too many open files" in records[0].getMessage()
    finally:
        loop.close()
