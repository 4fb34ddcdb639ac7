"""The PostgreSQL tests never skip by accident: no server binaries is a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import pytest

@pytest.mark.postgres
def test_needs_postgres(postgres_dsn):
    assert postgres_dsn.startswith("postgresql://")
"""


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one PostgreSQL test, with the session fixtures of tests/conftest.py, in a pytest
    of its own that finds no PostgreSQL binaries."""
    probe = tmp_path / "probe_test.py"
    probe.write_text(PROBE, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"),
         "--rootdir", str(ROOT), "-p", "tests.conftest", "-p", "no:cacheprovider",
         # a plugin some environments add, unrelated to this test (it warns at start)
         "-p", "no:asyncio", "-q", str(probe)],
        cwd=ROOT,
        env={**os.environ, "LANGCHAIN_RUNTIME_PG_BIN": str(tmp_path / "nothing"), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip


def test_missing_postgres_fails_with_a_clear_message(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "PostgreSQL server binaries not found" in result.stdout
    assert "apt-get install -y postgresql" in result.stdout
    assert "1 error" in result.stdout


def test_missing_postgres_skips_only_when_asked(tmp_path: Path) -> None:
    result = _run(tmp_path, LANGCHAIN_RUNTIME_SKIP_POSTGRES="1")
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert "LANGCHAIN_RUNTIME_SKIP_POSTGRES=1" in result.stdout
