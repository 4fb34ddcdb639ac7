"""JSON log lines: the formatter, and ``configure_logging`` as ``serve`` uses it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from langchain_runtime.context.builder import enter_task, exit_task
from langchain_runtime.observability._logging import JsonFormatter, configure_logging


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_json_line_has_time_level_logger_message_and_ids() -> None:
    fmt = JsonFormatter()
    record = logging.LogRecord("langchain_runtime.x", logging.WARNING, "f.py", 3, "task %s slow",
                               ("t1",), None)  # fmt: skip
    record.run_id, record.task_id = "run-9", "t1"
    line = json.loads(fmt.format(record))
    assert line["level"] == "WARNING" and line["logger"] == "langchain_runtime.x"
    assert line["message"] == "task t1 slow"
    assert line["run_id"] == "run-9" and line["task_id"] == "t1"
    assert line["time"].endswith("Z") and "T" in line["time"]


def test_a_line_logged_inside_a_task_carries_its_task_id() -> None:
    record = logging.LogRecord("x", logging.INFO, "f.py", 1, "inside", (), None)
    token = enter_task("research")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        exit_task(token)
    assert line["task_id"] == "research" and "run_id" not in line


def test_exceptions_are_one_field_of_one_line() -> None:
    try:
        raise ValueError("bad\nnews")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, "f.py", 1, "failed", (), sys.exc_info())
    text = JsonFormatter().format(record)
    assert "\n" not in text
    assert "ValueError: bad\nnews" in json.loads(text)["exception"]


def test_configure_logging_json_writes_one_object_per_line(
    restore_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from uvicorn.config import LOGGING_CONFIG

    monkeypatch.setitem(LOGGING_CONFIG, "formatters", dict(LOGGING_CONFIG["formatters"]))
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    log = logging.getLogger("langchain_runtime.test")
    log.info("run %s accepted", "r1", extra={"run_id": "r1"})
    log.warning("plain")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["message"], x.get("run_id")) for x in lines] == [("run r1 accepted", "r1"),
                                                                ("plain", None)]  # fmt: skip
    assert LOGGING_CONFIG["formatters"]["access"]["()"].endswith("JsonFormatter")
    # configuring again replaces the handler instead of doubling every line
    configure_logging("json", stream=stream)
    assert sum(getattr(h, "_lcr_handler", False) for h in logging.getLogger().handlers) == 1


def test_an_unknown_log_format_is_refused(restore_root: None) -> None:
    with pytest.raises(ValueError, match="'text' or 'json'"):
        configure_logging("yaml")  # type: ignore[arg-type]
