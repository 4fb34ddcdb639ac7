"""``run --store``, ``resume`` and ``runs list|wait|events --store`` with real SQLite files."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from langchain_runtime.cli.progress import RunProgress
from langchain_runtime.domain import TaskResult
from langchain_runtime.store import SQLiteRunStore
from tests.unit.cli._support import CHAIN, Cli, Write

SLOW = """\
models:
  quick: {provider: simulated, response_tokens: 4}
  slow: {provider: simulated, response_tokens: 4, latency: 30}
tasks:
  - {id: first, model: quick, prompt: "Start {topic}"}
  - {id: second, model: slow, prompt: "Continue {first}", deps: [first]}
  - {id: third, model: quick, prompt: "End {second}", deps: [second]}
"""
#: The same workflow once the slow provider is fast again (model ids unchanged).
FIXED = SLOW.replace("latency: 30", "latency: 0")

RESUME_HINT = re.compile(r"langchain-runtime resume (\S+) --store (\S+)")


def _stored_ids(path: Path) -> list[str]:
    store = SQLiteRunStore(path)
    try:
        return [s.run_id for s in store.list_runs()[0]]
    finally:
        store.close()


def test_run_keeps_the_run_and_runs_list_shows_it(cli: Cli, write: Write, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    out = cli("run", write("wf.yaml", CHAIN), "-i", "topic=owls", "--store", db, "--json")
    assert out.exit_code == 0, out.stderr
    run_id = out.json()["run_id"]
    assert _stored_ids(db) == [run_id]
    listed = cli("runs", "list", "--store", db)
    assert listed.exit_code == 0, listed.stderr
    assert run_id in listed.stdout and "completed" in listed.stdout and "2/2" in listed.stdout
    data = cli("runs", "list", "--store", db, "--json").json()
    assert data["total"] == 1 and data["items"][0]["completed"] == 2
    assert float(data["items"][0]["cost"]) > 0


def test_ctrl_c_leaves_a_resumable_run_and_says_how(
    cli: Cli, write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_sigint: None
) -> None:
    original = RunProgress.__call__

    def record_then_interrupt(self: RunProgress, result: TaskResult) -> None:
        original(self, result)
        if result.task_id == "first":
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C does

    monkeypatch.setattr(RunProgress, "__call__", record_then_interrupt)
    db = tmp_path / "runs.db"
    wf = write("slow.yaml", SLOW)
    out = cli("run", wf, "-i", "topic=x", "--store", db)
    assert out.exit_code == 130
    hint = RESUME_HINT.search(out.stderr)
    assert hint is not None, out.stderr
    run_id = hint.group(1)
    assert hint.group(2) == str(db)
    monkeypatch.undo()

    wf.write_text(FIXED)  # the provider is fast again; the graph is the same
    again = cli("resume", run_id, "--store", db, "--json")
    assert again.exit_code == 0, again.stderr
    data = again.json()
    assert data["state"] == "completed" and data["run_id"] == run_id
    assert data["tasks"]["first"]["restored"] is True
    assert data["tasks"]["second"]["restored"] is False
    assert data["tasks"]["third"]["restored"] is False


def test_resume_with_a_top_up_finishes_a_run_over_budget(
    cli: Cli, write: Write, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    tight = CHAIN.replace("max_cost: 0.01", "max_cost: 0.0000001")
    out = cli("run", write("wf.yaml", tight), "-i", "topic=owls", "--store", db)
    assert out.exit_code == 1
    hint = RESUME_HINT.search(out.stderr)
    assert hint is not None and "budget_exceeded" in out.stderr
    run_id = hint.group(1)
    prefix = run_id[:8]  # a unique prefix will do
    topped = cli("resume", prefix, "--store", db, "--max-cost", "1", "--json")
    assert topped.exit_code == 0, topped.stderr
    data = topped.json()
    assert data["state"] == "completed"
    assert 0 < float(data["cost"]["amount"]) <= 1


def test_resume_refuses_a_changed_workflow_and_unknown_runs(
    cli: Cli, write: Write, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    wf = write("wf.yaml", CHAIN.replace("max_cost: 0.01", "max_cost: 0.0000001"))
    run_id = RESUME_HINT.search(cli("run", wf, "-i", "topic=o", "--store", db).stderr).group(1)  # type: ignore[union-attr]
    wf.write_text(CHAIN.replace('"Repeat: {a}"', '"Say it again: {a}"'))
    changed = cli("resume", run_id, "--store", db, "--max-cost", "1")
    assert changed.exit_code == 1
    assert "task 'b': its prompt changed" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1
    unknown = cli("resume", "nope", "--store", db)
    assert unknown.exit_code == 2 and "no run 'nope'" in unknown.stderr
    missing = cli("resume", run_id, "--store", tmp_path / "other.db")
    assert missing.exit_code == 2 and "no run store at" in missing.stderr
    both = cli("resume", run_id)
    assert both.exit_code == 2 and "exactly one of --store" in both.stderr


def test_resume_of_a_moved_workflow_file_needs_file(cli: Cli, write: Write, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    wf = write("wf.yaml", CHAIN.replace("max_cost: 0.01", "max_cost: 0.0000001"))
    run_id = RESUME_HINT.search(cli("run", wf, "-i", "topic=o", "--store", db).stderr).group(1)  # type: ignore[union-attr]
    moved = tmp_path / "moved.yaml"
    wf.rename(moved)
    gone = cli("resume", run_id, "--store", db)
    assert gone.exit_code == 2 and "is gone; give it with --file" in gone.stderr
    ok = cli("resume", run_id, "--store", db, "--file", moved, "--max-cost", "1")
    assert ok.exit_code == 0, ok.stderr
    assert "restored" in ok.stderr


def test_a_damaged_store_is_one_line(cli: Cli, write: Write, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    db.write_text("not a database at all\n" * 20)
    out = cli("runs", "list", "--store", db)
    assert out.exit_code == 2  # a wrong file given to --store: bad input, like a missing one
    assert out.stderr.strip() == f"error: run store {db} is not an SQLite database"


def test_runs_wait_and_events_read_a_store_file(cli: Cli, write: Write, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    done = cli("run", write("wf.yaml", CHAIN), "-i", "topic=owls", "--store", db, "--json")
    run_id = done.json()["run_id"]
    waited = cli("runs", "wait", run_id[:8], "--store", db, "--json")
    assert waited.exit_code == 0, waited.stderr
    assert waited.json()["state"] == "completed" and waited.json()["run_id"] == run_id
    lines = cli("runs", "events", run_id, "--store", db, "--json").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    plain = cli("runs", "events", run_id, "--store", db).stdout
    assert "run_finished" in plain and "task_completed a" in plain

    tight = CHAIN.replace("max_cost: 0.01", "max_cost: 0.0000001")
    over = cli("run", write("tight.yaml", tight), "-i", "topic=o", "--store", db)
    stopped = RESUME_HINT.search(over.stderr).group(1)  # type: ignore[union-attr]
    failed = cli("runs", "wait", stopped, "--store", db)
    assert failed.exit_code == 1 and "ended budget_exceeded" in failed.stderr
    assert f"langchain-runtime resume {stopped} --store" in failed.stdout
    missing = cli("runs", "wait", "nope", "--store", db)
    assert missing.exit_code == 2 and "no run 'nope'" in missing.stderr


def test_runs_events_follows_a_run_another_process_executes(
    cli: Cli, write: Write, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    wf = write("slow.yaml", SLOW.replace("latency: 30", "latency: 1.5"))
    runner = subprocess.Popen(
        [sys.executable, "-m", "langchain_runtime", "run", str(wf), "-i", "topic=x",
         "--store", str(db), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (db.exists() and _stored_ids(db)):
            assert runner.poll() is None and time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        run_id = _stored_ids(db)[0]
        early = cli("runs", "wait", run_id, "--store", db, "--timeout", "0.2")
        assert early.exit_code == 1 and "still running after 0.2s" in early.stderr
        followed = cli("runs", "events", run_id, "--store", db, "--json", "--timeout", "60")
        assert followed.exit_code == 0, followed.stderr
        types = [json.loads(line)["type"] for line in followed.stdout.splitlines()]
        assert types[0] == "run_started" and types[-1] == "run_finished"
        assert types.count("task_completed") == 3
        out, err = runner.communicate(timeout=60)
        assert runner.returncode == 0, err.decode()
        assert json.loads(out)["run_id"] == run_id
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate(timeout=30)
