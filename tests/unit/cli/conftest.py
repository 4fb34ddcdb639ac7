from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langchain_runtime.cli.app import app
from tests.unit.cli._support import Cli, Outcome, Write


@pytest.fixture
def cli() -> Cli:
    """Invoke ``langchain-runtime`` in-process with the CLI library's runner."""
    runner = CliRunner()

    def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Outcome:
        argv: Sequence[str] = [str(a) for a in args]
        result = runner.invoke(app, argv, env={"COLUMNS": "200", **(env or {})})
        return Outcome(result.exit_code, result.stdout, result.stderr, result.exception)

    return invoke


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """Python's own Ctrl-C handler, as a fresh ``langchain-runtime`` process has it.

    In this test process an earlier test's event loop runner may have left its own
    handler behind; ``asyncio.run`` installs its Ctrl-C handling only over the default.
    """
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write ``text`` to ``tmp_path / name`` and return the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def sidecar() -> Iterator[str]:
    pytest.importorskip("fastapi", reason="needs the 'server' extra")
    from langchain_runtime.api import RuntimeClient
    from langchain_runtime.api.server import create_app, serve_in_thread
    from langchain_runtime.api.store import MemoryRunStore

    with serve_in_thread(create_app(store=MemoryRunStore())) as server:
        with RuntimeClient(server.url, timeout=10) as client:
            for run_id in (str(uuid.uuid4()), str(uuid.uuid4()), "abc-1", "abc-2"):
                client.start_run(
                    tasks=[{"id": "a", "prompt": "hi", "model": "simulated"}], run_id=run_id
                )
            for run in client.list_runs().items:
                client.wait(run.run_id, timeout=10, poll_interval=0.02)
        yield server.url
