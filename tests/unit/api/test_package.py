from __future__ import annotations

import subprocess
import sys

import pytest

import langchain_runtime.api as api


def test_all_is_honest() -> None:
    assert sorted(api.__all__) == sorted(set(api.__all__))
    for name in api.__all__:
        assert hasattr(api, name), name


def test_the_client_does_not_import_the_server() -> None:
    code = (
        "import sys, langchain_runtime.api; "
        "print([m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_a_missing_server_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_runtime.api import server

    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(ImportError, match=r"pip install 'langchain-runtime\[server\]'"):
        server.create_app()
    with pytest.raises(ImportError, match="fastapi is missing"):
        server.serve()


def test_every_module_imports_without_the_server_extra() -> None:
    # the test run imports every module (doctests); a missing extra must not break it
    code = (
        "import sys, pkgutil, importlib\n"
        "for m in ('fastapi', 'uvicorn', 'starlette'):\n"
        "    sys.modules[m] = None\n"
        "import langchain_runtime.api as api\n"
        "names = [m.name for m in pkgutil.walk_packages(api.__path__, 'langchain_runtime.api.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert int(out.stdout) >= 10
