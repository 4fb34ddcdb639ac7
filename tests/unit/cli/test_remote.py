"""``serve`` and ``runs ...``: argument handling, against a fake server and client."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, ClassVar

import pytest

from langchain_runtime.config import RuntimeConfig, load_config
from langchain_runtime.domain import RunEvent, RunResult
from tests.unit.cli._support import CHAIN, EXAMPLE, Cli, Write

schemas = pytest.importorskip("langchain_runtime.api.schemas")
api_errors = pytest.importorskip("langchain_runtime.api.errors")

# ----------------------------------------------------------------------------- serve


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the server module: record what ``serve`` is called with."""
    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("langchain_runtime.api.server")
    fake.serve = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langchain_runtime.api.server", fake)
    return calls


def test_serve_defaults(cli: Cli, served: list[dict[str, Any]]) -> None:
    out = cli("serve", env={"LANGCHAIN_RUNTIME_TOKEN": ""})
    assert out.exit_code == 0, out.stderr
    assert served == [
        {"host": "127.0.0.1", "port": 8000, "config": None, "store": None, "token": None}
    ]


def test_serve_passes_every_option_and_the_loaded_config(
    cli: Cli, served: list[dict[str, Any]]
) -> None:
    out = cli(
        "serve", "--host", "0.0.0.0", "--port", "9001", "--config", EXAMPLE,
        "--store", ":memory:", "--token", "s3cret",
    )  # fmt: skip
    assert out.exit_code == 0, out.stderr
    (call,) = served
    assert call["host"] == "0.0.0.0" and call["port"] == 9001
    assert call["store"] == ":memory:" and call["token"] == "s3cret"
    assert isinstance(call["config"], RuntimeConfig)
    assert "research" in call["config"].workflows


def test_serve_token_from_the_environment(cli: Cli, served: list[dict[str, Any]]) -> None:
    assert cli("serve", env={"LANGCHAIN_RUNTIME_TOKEN": "from-env"}).exit_code == 0
    assert served[0]["token"] == "from-env"


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_serve_refuses_a_bad_port(cli: Cli, served: list[dict[str, Any]], port: str) -> None:
    out = cli("serve", "--port", port)
    assert out.exit_code == 2
    assert served == []


def test_serve_reports_a_bad_config_before_starting(
    cli: Cli, served: list[dict[str, Any]], write: Write
) -> None:
    out = cli("serve", "--config", write("bad.yaml", "policies: {p: {max_parallelism: -1}}\n"))
    assert out.exit_code == 2
    assert "bad.yaml:1: policies.p.max_parallelism" in out.stderr
    assert served == []


def test_serve_without_the_server_is_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_runtime.api.server", None)
    out = cli("serve")
    assert out.exit_code == 1
    assert out.stderr.startswith("error: the sidecar server is not available")
    assert "pip install 'langchain-runtime[server]'" in out.stderr
    assert out.stderr.count("\n") == 1


def test_serve_missing_dependency_is_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def serve(**kwargs: Any) -> None:
        raise ImportError("the runtime's HTTP server needs FastAPI and uvicorn; pip install x")

    fake = types.ModuleType("langchain_runtime.api.server")
    fake.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langchain_runtime.api.server", fake)
    out = cli("serve")
    assert out.exit_code == 1
    assert out.stderr == (
        "error: the runtime's HTTP server needs FastAPI and uvicorn; pip install x\n"
    )


# ----------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def finished() -> RunResult:
    """A real run of a small workflow, to serve from the fake client."""
    result: RunResult = load_config(
        {"tasks": [
            {"id": "a", "prompt": "A {topic}", "model": "simulated"},
            {"id": "b", "prompt": "B {a}", "model": "simulated", "deps": ["a"]},
        ]}
    ).build_workflow().invoke({"topic": "owls"})  # fmt: skip
    return result


class FakeClient:
    """Stands in for ``RuntimeClient``; answers with the API's own wire models."""

    instances: ClassVar[list[FakeClient]] = []
    result: ClassVar[RunResult]
    state: ClassVar[str] = "completed"
    error: ClassVar[BaseException | None] = None

    def __init__(self, base_url: str, *, token: str | None = None) -> None:
        self.base_url, self.token = base_url, token
        self.calls: list[tuple[str, Any]] = []
        self.closed = False
        FakeClient.instances.append(self)

    def _status(self, run_id: str) -> Any:
        if self.error is not None:
            raise self.error
        return schemas.RunStatus.from_result(self.result, run_id=run_id, state=self.state)

    def list_runs(self, **kwargs: Any) -> Any:
        self.calls.append(("list_runs", kwargs))
        now = datetime(2026, 11, 27, tzinfo=timezone.utc)
        items = [
            schemas.RunSummary(
                run_id=f"run-{i}", state="completed", workflow="chain", created_at=now,
                tasks=2, total_tokens=100 * i, cost={"amount": "0.001", "currency": "USD"},
            )
            for i in (1, 2)
        ]  # fmt: skip
        return schemas.RunPage(items=items, total=5, limit=2, offset=0)

    def get_run(self, run_id: str) -> Any:
        self.calls.append(("get_run", run_id))
        return self._status(run_id)

    def wait(self, run_id: str, timeout: float) -> Any:
        self.calls.append(("wait", (run_id, timeout)))
        return self._status(run_id)

    def abort_run(self, run_id: str) -> Any:
        self.calls.append(("abort_run", run_id))
        if self.error is not None:
            raise self.error
        return schemas.RunAccepted(run_id=run_id, state="aborting")

    def events(self, run_id: str) -> Iterator[RunEvent]:
        self.calls.append(("events", run_id))
        yield from self.result.events

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, finished: RunResult) -> type[FakeClient]:
    fake = types.ModuleType("langchain_runtime.api.client")
    fake.RuntimeClient = FakeClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langchain_runtime.api.client", fake)
    monkeypatch.setattr(FakeClient, "instances", [])
    monkeypatch.setattr(FakeClient, "result", finished, raising=False)
    monkeypatch.setattr(FakeClient, "state", "completed")
    monkeypatch.setattr(FakeClient, "error", None)
    return FakeClient


def test_runs_list_table_and_options(cli: Cli, client: type[FakeClient]) -> None:
    out = cli("runs", "list", "--url", "http://sidecar:1", "--token", "t", "--state", "completed",
              "--limit", "2")  # fmt: skip
    assert out.exit_code == 0, out.stderr
    assert "run-1" in out.stdout and "run-2" in out.stdout and "chain" in out.stdout
    assert "2 of 5 runs shown" in out.stdout
    (made,) = client.instances
    assert (made.base_url, made.token) == ("http://sidecar:1", "t")
    assert made.calls == [("list_runs", {"state": "completed", "limit": 2})]
    assert made.closed


def test_runs_url_and_token_from_the_environment(cli: Cli, client: type[FakeClient]) -> None:
    env = {"LANGCHAIN_RUNTIME_URL": "http://env:2", "LANGCHAIN_RUNTIME_TOKEN": "tok"}
    out = cli("runs", "list", "--json", env=env)
    assert out.exit_code == 0, out.stderr
    assert [i["run_id"] for i in out.json()["items"]] == ["run-1", "run-2"]
    assert (client.instances[0].base_url, client.instances[0].token) == ("http://env:2", "tok")


def test_runs_status(cli: Cli, client: type[FakeClient], finished: RunResult) -> None:
    out = cli("runs", "status", "r1")
    assert out.exit_code == 0, out.stderr
    assert "Run r1 · completed" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith(("│ a ", "│ b "))]
    assert len(rows) == 2 and all("completed" in r for r in rows)
    data = cli("runs", "status", "r1", "--json").json()
    assert data["run_id"] == "r1"
    assert data["usage"]["total_tokens"] == finished.usage.total_tokens


def test_runs_wait_exit_status_follows_the_run(cli: Cli, client: type[FakeClient]) -> None:
    ok = cli("runs", "wait", "r1", "--timeout", "5")
    assert ok.exit_code == 0, ok.stderr
    assert client.instances[0].calls == [("wait", ("r1", 5.0))]
    client.state = "failed"
    bad = cli("runs", "wait", "r1")
    assert bad.exit_code == 1
    assert bad.stderr == "error: run r1 ended failed\n"


def test_runs_wait_timeout_is_one_line(cli: Cli, client: type[FakeClient]) -> None:
    client.error = api_errors.ApiTimeoutError("run r1 still running after 1s")
    out = cli("runs", "wait", "r1", "--timeout", "1")
    assert out.exit_code == 1
    assert out.stderr == "error: run r1 still running after 1s\n"


def test_runs_abort(cli: Cli, client: type[FakeClient]) -> None:
    out = cli("runs", "abort", "r1")
    assert out.exit_code == 0, out.stderr
    assert out.stdout.strip() == "run r1: aborting"
    assert cli("runs", "abort", "r1", "--json").json() == {"run_id": "r1", "state": "aborting"}


def test_runs_not_found_and_unreachable(cli: Cli, client: type[FakeClient]) -> None:
    body = {"code": "run_not_found", "message": "no run 'zz'"}
    client.error = api_errors.error_from_body(404, body)
    out = cli("runs", "status", "zz")
    assert (out.exit_code, out.stderr) == (1, "error: no run 'zz'\n")
    client.error = api_errors.ApiConnectionError("GET http://x/api/v1/runs/zz: connection refused")
    out = cli("runs", "abort", "zz")
    assert out.exit_code == 1
    assert out.stderr == "error: GET http://x/api/v1/runs/zz: connection refused\n"


def test_runs_events(cli: Cli, client: type[FakeClient], finished: RunResult) -> None:
    out = cli("runs", "events", "r1")
    assert out.exit_code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(finished.events)
    assert lines[0].startswith("0 run_started {")
    assert any(" task_completed a {" in line for line in lines)
    shown = cli("runs", "events", "r1", "--json").stdout.splitlines()
    as_json = [json.loads(line) for line in shown]
    assert [e["type"] for e in as_json] == [e.type for e in finished.events]


def test_runs_needs_a_subcommand(cli: Cli) -> None:
    out = cli("runs", "stats", "x")
    assert out.exit_code == 2
    assert "No such command" in out.stdout + out.stderr


def test_runs_without_the_client_is_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_runtime.api.client", None)
    out = cli("runs", "list")
    assert out.exit_code == 1
    assert out.stderr.startswith("error: the sidecar client is not available")
    assert out.stderr.count("\n") == 1


def test_chain_fixture_is_valid(cli: Cli, write: Write) -> None:
    assert cli("validate", write("c.yaml", CHAIN)).exit_code == 0
