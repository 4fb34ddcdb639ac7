from __future__ import annotations

from collections.abc import Sequence
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
def write(tmp_path: Path) -> Write:
    """Write ``text`` to ``tmp_path / name`` and return the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write
