"""Every notebook runs top to bottom, offline, and shows what it promises."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def execute(name: str) -> Any:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    # the kernel inherits this process's environment (offline tiktoken cache included)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute(env=dict(os.environ))
    return nb


def outputs(nb: Any) -> tuple[str, str]:
    text, html = [], []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                prefix = "STDERR: " if out.get("name") == "stderr" else ""
                text.append(prefix + out["text"])
            data = out.get("data", {})
            text.append(data.get("text/plain", ""))
            html.append(data.get("text/html", ""))
            html.append(data.get("image/svg+xml", ""))
            text.append(data.get("text/markdown", ""))
            assert out.get("output_type") != "error", out
    return "\n".join(text), "\n".join(html)


def test_notebooks_are_all_tested() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECT)


def _quickstart(text: str, html: str) -> None:
    assert "<table class='lcr-tasks'>" in html and "<code>review</code>" in html and "$0.00" in html
    assert html.count("class='lcr-bar'") == 6  # the timeline: one bar per task
    assert "class='lcr-graph'" in html and "data-task='draft_body'" in html  # draw_svg
    assert "<script" not in html
    # progress is one widget line (or plain text on stdout): no warning, no stderr box
    assert "STDERR: " not in text and "IProgress" not in text
    assert "completed -" in text and "USD" in text
    assert "invoke_workflow Orchestrator\n  task research\n    chat simulated  " in text
    # parallel tasks: each call under its own task
    assert all(
        f"  task draft_{s}\n    chat simulated" in text for s in ("intro", "body", "conclusion")
    )


def _budget(text: str, html: str) -> None:
    assert "All five cities are at 20C." in text
    assert "stopped: Budget exceeded" in text
    assert "model calls made: " in text
    assert "chat gpt-4o-mini ERROR ['refused']" in text


def _context(text: str, html: str) -> None:
    assert "summarize: " in text and "tokens truncated" in text
    assert "failed - context_too_large - cost: 0 USD" in text
    assert "history trimmed: " in text and "answer: A family eats thousands a year." in text


def _sidecar(text: str, html: str) -> None:
    assert "'status': 'ok'" in text
    assert "<table class='lcr-tasks'>" in html and "<code>summary</code>" in html
    assert 'langchain_runtime_runs{state="completed"} 1.0' in text
    assert "aborted {'after': 'skipped', 'long': 'cancelled'}" in text
    assert "task_completed summary" in text and "run_finished" in text


def _durable(text: str, html: str) -> None:
    assert "'outline': 'completed', 'research': 'completed', 'review': 'cancelled'" in text
    assert "aborted 2/4 tasks completed" in text
    assert "outline   completed  restored=True" in text
    assert "research  completed  restored=True" in text
    assert "review    completed  restored=False" in text
    assert "draft     completed  restored=False" in text
    assert "<title>draft: completed" in html and html.count("class='lcr-bar'") == 4


EXPECT = {
    "01_quickstart.ipynb": _quickstart,
    "02_budget_an_agent.ipynb": _budget,
    "03_context.ipynb": _context,
    "04_sidecar.ipynb": _sidecar,
    "05_durable.ipynb": _durable,
}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_notebook_runs_offline(name: str) -> None:
    text, html = outputs(execute(name))
    EXPECT[name](text, html)
