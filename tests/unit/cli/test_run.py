"""``langchain-runtime run``: results, JSON, exit codes, bad input, Ctrl-C."""

from __future__ import annotations

import io
import itertools
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from langchain_runtime.cli import run as run_module
from langchain_runtime.cli.progress import RunProgress
from langchain_runtime.domain import TaskResult, TaskState
from tests.unit.cli._support import CHAIN, EXAMPLE, Cli, Write


def test_run_shows_each_task_and_its_output(cli: Cli) -> None:
    out = cli("run", EXAMPLE, "--input", "topic=barn owls")
    assert out.exit_code == 0, out.stderr
    assert "completed" in out.stdout
    for task in ("research", "outline", "draft_intro", "draft_body", "draft_conclusion", "review"):
        assert task in out.stdout
    assert "total" in out.stdout and "$0.0" in out.stdout
    # progress went to stderr, one line per finished task (not a terminal here)
    assert out.stderr.count("✓") == 6
    assert "[6/6]" in out.stderr


def test_run_json_is_the_run_result_with_messages_as_text(cli: Cli) -> None:
    out = cli("run", EXAMPLE, "-i", "topic=x", "--json")
    assert out.exit_code == 0, out.stderr
    data = out.json()  # stdout holds the JSON and nothing else
    assert data["state"] == "completed"
    assert set(data["tasks"]) == {
        "research",
        "outline",
        "draft_intro",
        "draft_body",
        "draft_conclusion",
        "review",
    }
    assert isinstance(data["outputs"]["review"], str) and data["outputs"]["review"]
    assert data["tasks"]["review"]["output"] == data["outputs"]["review"]
    assert data["memory"]["review"] == data["outputs"]["review"]
    assert data["usage"]["total_tokens"] == sum(
        t["usage"]["total_tokens"] for t in data["tasks"].values()
    )
    assert out.stderr == ""  # no progress display with --json


def test_input_file_and_input_pairs_merge(cli: Cli, write: Write) -> None:
    wf = write("wf.yaml", CHAIN)
    inputs = write("in.json", json.dumps({"topic": "from the file"}))
    out = cli("run", wf, "--input-file", inputs, "--json")
    assert out.exit_code == 0, out.stderr
    out = cli("run", wf, "--input-file", inputs, "-i", "topic=override", "--json")
    assert out.exit_code == 0, out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "topic"], "--input 'topic': expected key=value"),
        (["-i", "=x"], "expected key=value"),
        ([], "the run input is missing 'topic' (given: none); pass --input topic=..."),
        (["-i", "topic=x", "--budget", "lots"], "--budget 'lots': expected an amount"),
        (["-i", "topic=x", "--budget", "-1"], "expected an amount of money >= 0"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    cli: Cli, write: Write, args: list[str], message: str
) -> None:
    out = cli("run", write("wf.yaml", CHAIN), *args)
    assert out.exit_code == 2
    assert message in out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")
    assert "Traceback" not in out.stderr


def test_bad_input_file_exits_2(cli: Cli, write: Write, tmp_path: Path) -> None:
    wf = write("wf.yaml", CHAIN)
    missing = cli("run", wf, "--input-file", tmp_path / "nope.json")
    assert missing.exit_code == 2
    assert "nope.json: cannot read the file" in missing.stderr
    not_json = cli("run", wf, "--input-file", write("bad.json", "{topic: x"))
    assert not_json.exit_code == 2 and "not valid JSON" in not_json.stderr
    a_list = cli("run", wf, "--input-file", write("list.json", "[1, 2]"))
    assert a_list.exit_code == 2 and "expected a JSON object" in a_list.stderr


def test_bad_workflow_file_exits_2_naming_file_line_and_field(cli: Cli, write: Write) -> None:
    path = write("typo.yaml", CHAIN.replace("max_parallelism: 2", "max_paralelism: 2"))
    out = cli("run", path, "-i", "topic=x")
    assert out.exit_code == 2
    assert f"{path}:5: policy.max_paralelism: unknown field; did you mean 'max_parallelism'" in (
        out.stderr
    )
    missing = cli("run", path.with_name("absent.yaml"))
    assert missing.exit_code == 2
    assert "absent.yaml: cannot read the file" in missing.stderr


def test_budget_exceeded_exits_1_and_still_shows_what_ran(cli: Cli) -> None:
    out = cli("run", EXAMPLE, "-i", "topic=x", "--budget", "0.0001")
    assert out.exit_code == 1
    assert "budget_exceeded" in out.stdout  # the table
    assert "completed" in out.stdout  # the tasks that fit
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: run ") and "ended budget_exceeded" in last
    assert "BudgetExceededError" in last
    as_json = cli("run", EXAMPLE, "-i", "topic=x", "--budget", "0.0001", "--json")
    assert as_json.exit_code == 1
    assert as_json.json()["state"] == "budget_exceeded"
    assert as_json.stderr.count("\n") == 1 and "ended budget_exceeded" in as_json.stderr


def test_budget_and_parallelism_overrides_apply(cli: Cli) -> None:
    out = cli("run", EXAMPLE, "-i", "topic=x", "--budget", "$1", "--max-parallelism", "1", "--json")
    assert out.exit_code == 0, out.stderr
    drafts = sorted(
        (t["started_at"], t["ended_at"]) for t in out.json()["tasks"].values() if t["batch"] == 3
    )
    assert len(drafts) == 3
    for (_, ended), (started, _) in itertools.pairwise(drafts):
        assert ended <= started  # one task at a time
    bad = cli("run", EXAMPLE, "-i", "topic=x", "--max-parallelism", "0")
    assert bad.exit_code == 2  # a usage error from the option's own range


def test_a_failed_task_exits_1(cli: Cli, write: Write) -> None:
    wf = write(
        "fails.yaml",
        CHAIN.replace("model: fast\n", "model: fast\ninput_keys: [topic]\n").replace(
            "max_parallelism: 2", "max_parallelism: 2\n  timeout: 0.2"
        ).replace("fast: {provider: simulated, response_tokens: 12}",
                  "fast: {provider: simulated, response_tokens: 12, latency: 1}"),
    )  # fmt: skip
    out = cli("run", wf, "-i", "topic=x")
    assert out.exit_code == 1
    assert "timed_out" in out.stdout
    assert "ended timed_out" in out.stderr


def test_workflow_with_an_output_task_still_shows_every_task(cli: Cli, write: Write) -> None:
    wf = write("out.yaml", CHAIN.replace("model: fast\n", "model: fast\noutput: b\n"))
    out = cli("run", wf, "-i", "topic=x", "--json")
    assert out.exit_code == 0, out.stderr
    assert set(out.json()["tasks"]) == {"a", "b"}


MULTI = """\
models:
  fast: {provider: simulated, response_tokens: 5}
workflows:
  one:
    model: fast
    tasks: [{id: a, prompt: "One {x}"}]
  two:
    model: fast
    tasks: [{id: b, prompt: "Two {x}"}, {id: c, prompt: "Three", deps: [b]}]
"""


def test_workflow_option_picks_one_of_several(cli: Cli, write: Write) -> None:
    path = write("multi.yaml", MULTI)
    out = cli("run", path, "-w", "two", "-i", "x=1", "--json")
    assert out.exit_code == 0, out.stderr
    assert set(out.json()["tasks"]) == {"b", "c"}
    ambiguous = cli("run", path, "-i", "x=1")
    assert ambiguous.exit_code == 2
    assert "defines several workflows (one, two); name the one to run" in ambiguous.stderr
    unknown = cli("run", path, "-w", "three", "-i", "x=1")
    assert unknown.exit_code == 2 and "no workflow 'three'" in unknown.stderr


SLOW = """\
models:
  quick: {provider: simulated, response_tokens: 4}
  slow: {provider: simulated, response_tokens: 4, latency: 30}
tasks:
  - {id: first, model: quick, prompt: "Start {topic}"}
  - {id: second, model: slow, prompt: "Continue {first}", deps: [first]}
  - {id: third, model: quick, prompt: "End {second}", deps: [second]}
"""


def _interrupt_after_first(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    original = RunProgress.__call__

    def record_then_interrupt(self: RunProgress, result: TaskResult) -> None:
        original(self, result)
        if result.task_id == "first":
            if how == "signal":
                signal.raise_signal(signal.SIGINT)  # what Ctrl-C does
            else:
                raise KeyboardInterrupt

    monkeypatch.setattr(RunProgress, "__call__", record_then_interrupt)


@pytest.mark.parametrize("how", ["signal", "exception"])
def test_ctrl_c_aborts_cleanly_and_shows_what_finished(
    cli: Cli, write: Write, monkeypatch: pytest.MonkeyPatch, how: str, default_sigint: None
) -> None:
    _interrupt_after_first(monkeypatch, how)
    started = time.monotonic()
    out = cli("run", write("slow.yaml", SLOW), "-i", "topic=x")
    assert time.monotonic() - started < 10  # the 30 s call in flight was cancelled
    assert out.exit_code == 130
    assert "aborted" in out.stdout
    rows = {line.split("│")[1].strip(): line for line in out.stdout.splitlines() if "│" in line}
    assert "completed" in rows["first"] and "cancelled" in rows["second"]
    assert "cancelled" in rows["third"]
    assert "interrupted (Ctrl-C) after 1 of 3 tasks finished" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: interrupted")


def test_interrupted_result_counts_finished_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_runtime.config import load_config

    orchestrator = load_config({"tasks": [
        {"id": "a", "prompt": "A", "model": "simulated"},
        {"id": "b", "prompt": "B {a}", "model": "simulated", "deps": ["a"]},
    ]}).build_workflow()  # fmt: skip

    def sink(result: TaskResult) -> None:
        raise KeyboardInterrupt

    outcome = run_module.execute(orchestrator, {}, sink)
    assert outcome.interrupted
    result = outcome.result
    assert result.state.value == "aborted"
    assert result.tasks["a"].state is TaskState.COMPLETED
    assert result.tasks["b"].state is TaskState.CANCELLED
    assert result.usage == result.tasks["a"].usage
    assert result.outputs.keys() == {"a"}


def test_progress_in_a_terminal_is_a_live_view() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    deps: dict[str, Any] = {"a": (), "b": ("a",), "c": ("a",)}
    with RunProgress(console, ["a", "b", "c"], deps) as progress:
        assert progress.running() == ["a"]
        progress(TaskResult(task_id="a", state=TaskState.COMPLETED))
        assert progress.running() == ["b", "c"]
        progress(TaskResult(task_id="b", state=TaskState.FAILED))
    text = buffer.getvalue()
    assert "✓" in text and "a" in text and "✗" in text
