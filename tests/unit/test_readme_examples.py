"""The README's examples run as written (issue 10, findings 10, 11, 15, 16).

Code blocks are extracted from README.md and executed: the Python ones in a fresh
namespace (offline: simulated and scripted models), the sidecar one against a real
server on loopback started with the command the README shows, and the CLI lines
through the CLI's own runner.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def _blocks(title: str, lang: str) -> list[str]:
    return [code for kind, code in _BLOCK.findall(_section(title)) if kind == lang]


def _exec(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    return out.getvalue()


def test_the_fifteen_line_example_runs() -> None:
    (code,) = _blocks("In fifteen lines", "python")
    printed = _exec(code.replace("progress=True", "progress=False"))
    assert printed.startswith("completed ")


def test_the_budget_example_runs_offline_with_a_scripted_agent() -> None:
    (code,) = _blocks("Budgets", "python")
    assert "ScriptedChatModel" in code and "tool_calls" in code
    printed = _exec(code)
    assert printed.startswith("Barn owls hunt by sound. ")
    assert "USD" in printed


def test_the_sidecar_example_runs_against_the_server_the_readme_starts(tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="needs the 'server' extra")
    from langchain_runtime.api.server import create_app, serve_in_thread
    from langchain_runtime.config import load_config

    (command,) = _blocks("HTTP sidecar", "bash")
    argv = shlex.split(command, comments=True)
    assert argv[:2] == ["langchain-runtime", "serve"]
    config = argv[argv.index("--config") + 1]
    assert "./langchain-runtime-runs.sqlite3" in _section("HTTP sidecar")  # where runs go
    app = create_app(load_config(ROOT / config), store=tmp_path / "runs.sqlite3")
    (code,) = _blocks("HTTP sidecar", "python")
    with serve_in_thread(app) as server:
        printed = _exec(code.replace("http://127.0.0.1:8000", server.url))
    assert printed.split() == ["completed", "completed"]


def _cli_lines(title: str) -> list[list[str]]:
    lines = []
    for block in _blocks(title, "bash"):
        for line in block.splitlines():
            argv = shlex.split(line, comments=True)
            if argv and argv[0] == "langchain-runtime":
                lines.append(argv[1:])
    return lines


def test_the_command_line_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from langchain_runtime.cli.app import app

    monkeypatch.chdir(ROOT)
    runner = CliRunner()
    ran = 0
    for argv in _cli_lines("Command line"):
        if argv[0] in ("serve", "runs"):  # need a live server: checked by their --help
            result = runner.invoke(
                app, [*argv[:2], "--help"] if argv[0] == "runs" else [argv[0], "--help"]
            )
        else:
            result = runner.invoke(app, argv, env={"COLUMNS": "80"})
            ran += 1
        assert result.exit_code == 0, (argv, result.output)
    assert ran >= 5


def test_orchestrator_stream_has_its_own_docstring() -> None:
    from langchain_core.runnables import Runnable

    from langchain_runtime import Orchestrator

    assert Orchestrator.stream.__doc__ and Orchestrator.stream.__doc__ != Runnable.stream.__doc__
    assert "TaskResult" in Orchestrator.stream.__doc__


def test_draw_ascii_works_with_the_graph_extra() -> None:
    pytest.importorskip("grandalf", reason="the 'graph' extra draws ASCII graphs")
    from langchain_runtime.config import load_workflow

    drawing = load_workflow(ROOT / "examples" / "research.yaml").get_graph().draw_ascii()
    assert "draft_intro" in drawing and "review" in drawing
    extras: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(dep.startswith("grandalf") for dep in extras["graph"])


def test_pyproject_has_one_mypy_override_per_module() -> None:
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["overrides"]
    modules = [m for o in overrides for m in o["module"]]
    assert len(modules) == len(set(modules))
