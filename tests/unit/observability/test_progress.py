"""Progress: tqdm's widget with ipywidgets; otherwise plain text, and never a warning."""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

import pytest

from langchain_runtime import Orchestrator, Task
from langchain_runtime.observability import progress


def no_ipywidgets(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "ipywidgets" else real(name, *args)

    monkeypatch.setattr(progress.importlib.util, "find_spec", find_spec)


def fake_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)


def test_in_jupyter_without_ipywidgets_the_bar_is_text_on_stdout_without_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_ipywidgets(monkeypatch)
    fake_kernel(monkeypatch)
    # filterwarnings=error: tqdm's "IProgress not found" warning would fail this test
    result = Orchestrator([Task("a", lambda x: 1), Task("b", lambda x: 2)]).invoke(
        {}, progress=True
    )
    assert result.ok
    out, err = capsys.readouterr()
    assert "2/2" in out and "IProgress" not in out + err
    assert err == ""


def test_with_ipywidgets_in_jupyter_it_is_tqdm_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ipywidgets")
    from tqdm.auto import tqdm

    bar_class, defaults = progress._bar_class()
    assert bar_class is tqdm and defaults == {}
