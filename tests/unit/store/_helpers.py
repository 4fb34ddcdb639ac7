"""Small builders shared by the store tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage

from langchain_runtime.domain import Cost, TaskResult, TaskState, Usage
from langchain_runtime.store import RunHeader, TaskRecord, encode

#: The checkout, so a child process imports this langchain_runtime.
ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
FINGERPRINT = {
    "a": {"deps": [], "prompt": "say {q}", "model": "m", "inputs": None},
    "b": {"deps": ["a"], "prompt": "use {a}", "model": "m", "inputs": None},
}


def header(run_id: str = "r1", owner: str | None = None, **kw: Any) -> RunHeader:
    return RunHeader(
        run_id=run_id,
        name=kw.pop("name", "demo"),
        input=kw.pop("input", {"q": "hi"}),
        policy=kw.pop("policy", {"budget": {"max_cost": "0.5"}, "max_parallelism": 4}),
        fingerprint=kw.pop("fingerprint", FINGERPRINT),
        created_at=kw.pop("created_at", T0),
        owner=owner,
        **kw,
    )


def record(
    task_id: str, state: str = "completed", cost: str = "0.001", output: Any = None
) -> TaskRecord:
    """A task record as the orchestrator writes one: a real TaskResult, its output encoded."""
    result = TaskResult(
        task_id=task_id,
        state=TaskState(state),
        usage=Usage(input_tokens=10, output_tokens=5, total_tokens=15),
        cost=Cost(amount=Decimal(cost)),
        attempts=1,
    ).model_dump(mode="json")
    value = output if output is not None else AIMessage(f"out of {task_id}", id=f"m-{task_id}")
    result["output"] = encode(value, what=f"task {task_id!r} output")
    return TaskRecord(task_id, state, result)


class Child:
    """A Python subprocess running ``code``, which prints ``ready`` and waits for stdin."""

    def __init__(self, code: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd or ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded: the child prints or dies
        if line.strip() != "ready":
            self.proc.kill()
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"child did not start: {line!r} {err}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """Let the child end (it reads stdin to its end) and wait for it."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self._close()

    def kill(self) -> None:
        """SIGKILL: the child gets no chance to clean up."""
        self.proc.kill()
        self.proc.wait(timeout=30)
        self._close()

    def _close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
