"""The command as a whole: the error boundary, help, version, the entry points."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_runtime import __version__
from langchain_runtime.cli import validate as validate_module
from tests.unit.cli._support import EXAMPLE, Cli


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom")


def test_unexpected_error_is_one_line_with_a_hint(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validate_module, "validate", _boom)
    out = cli("validate", EXAMPLE)
    assert out.exit_code == 1
    assert out.stderr == "error: RuntimeError: boom (run with --debug for the traceback)\n"


@pytest.mark.parametrize("where", ["command", "root"])
def test_debug_shows_the_traceback(cli: Cli, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    monkeypatch.setattr(validate_module, "validate", _boom)
    args = ["validate", str(EXAMPLE), "--debug"] if where == "command" else [
        "--debug", "validate", str(EXAMPLE)
    ]  # fmt: skip
    out = cli(*args)
    assert out.exit_code == 1
    assert out.stderr.startswith("Traceback (most recent call last):")
    assert "in _boom" in out.stderr
    assert out.stderr.splitlines()[-1].startswith("error: RuntimeError: boom")


def test_domain_error_with_debug_keeps_its_exit_code(cli: Cli, tmp_path: Path) -> None:
    out = cli("validate", tmp_path / "none.yaml", "--debug")
    assert out.exit_code == 2
    assert "Traceback" in out.stderr and "ConfigFileError" in out.stderr


def test_interrupt_outside_a_run_exits_130(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(validate_module, "validate", interrupted)
    out = cli("validate", EXAMPLE)
    assert (out.exit_code, out.stderr) == (130, "error: interrupted\n")


def test_usage_errors_exit_2(cli: Cli) -> None:
    assert cli("run").exit_code == 2  # missing FILE
    assert cli("run", EXAMPLE, "--no-such-option").exit_code == 2
    assert cli("frobnicate").exit_code == 2


def test_help_lists_every_command(cli: Cli) -> None:
    out = cli("--help")
    assert out.exit_code == 0
    for command in ("run", "validate", "estimate", "serve", "models", "runs"):
        assert command in out.stdout
    runs = cli("runs", "--help").stdout
    for command in ("list", "status", "wait", "abort", "events"):
        assert command in runs


def test_version(cli: Cli) -> None:
    out = cli("--version")
    assert (out.exit_code, out.stdout) == (0, f"langchain-runtime {__version__}\n")


def test_python_dash_m(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["langchain_runtime", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("langchain_runtime", run_name="__main__")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"langchain-runtime {__version__}\n"


def test_missing_cli_extra_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from langchain_runtime.cli import main

    monkeypatch.delitem(sys.modules, "langchain_runtime.cli.app")
    monkeypatch.setitem(sys.modules, "typer", None)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "error: the command line needs the 'cli' extra (typer is not installed): "
        "pip install 'langchain-runtime[cli]'\n"
    )


def test_the_installed_entry_point_runs_the_example() -> None:
    script = Path(sys.executable).parent / "langchain-runtime"
    assert script.exists(), "pip install -e '.[cli]' installs the langchain-runtime script"
    repo = EXAMPLE.parents[1]
    done = subprocess.run(
        [str(script), "run", "examples/research.yaml", "--input", "topic=x", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    data = json.loads(done.stdout)
    assert data["state"] == "completed"
    assert len(data["tasks"]) == 6 and all(isinstance(v, str) for v in data["outputs"].values())
