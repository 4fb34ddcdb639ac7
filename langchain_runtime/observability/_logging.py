"""Logs as one JSON object per line (``langchain-runtime serve --log-format json``).

Library code never configures logging; it logs through ``logging.getLogger(__name__)``
and passes the ids a line is about in ``extra`` (``extra={"run_id": ..., "task_id":
...}``). :class:`JsonFormatter` writes those ids, and, where a line carries none, the
id of the task whose code is running (the runtime marks it in a context variable)
and the active OpenTelemetry trace, when there is one.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import IO, Any, Literal

__all__ = ["JsonFormatter", "LogFormat", "configure_logging"]

LogFormat = Literal["text", "json"]
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _trace_ids() -> dict[str, str]:
    otel = sys.modules.get("opentelemetry.trace")
    if otel is None:  # never import OpenTelemetry just to log
        return {}
    ctx = otel.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "run_id"?, "task_id"?, ...}`` per line.

    Example:
        >>> record = logging.LogRecord("lcr", logging.INFO, "x.py", 1, "run %s done",
        ...                            ("r1",), None)
        >>> record.run_id = "r1"
        >>> line = json.loads(JsonFormatter().format(record))
        >>> line["level"], line["logger"], line["message"], line["run_id"]
        ('INFO', 'lcr', 'run r1 done', 'r1')
    """

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc)
        data: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        run_id = getattr(record, "run_id", None)
        task_id = getattr(record, "task_id", None)
        if task_id is None:
            from langchain_runtime.context.builder import current_task_id

            task_id = current_task_id()
        if run_id is not None:
            data["run_id"] = str(run_id)
        if task_id is not None:
            data["task_id"] = str(task_id)
        data.update(_trace_ids())
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def configure_logging(
    log_format: LogFormat = "text",
    *,
    level: int | str = logging.INFO,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send the process's logs to ``stream`` (stderr) as text or JSON lines.

    For an application's entry point (the CLI's ``serve``), never for library code.
    In JSON mode uvicorn's own loggers (server and access log) write JSON lines too.

    Raises:
        ValueError: ``log_format`` is neither ``text`` nor ``json``.
    """
    if log_format not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {log_format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_lcr_handler", False)]:
        root.removeHandler(old)
    handler._lcr_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    if log_format == "json":
        _uvicorn_json()
    return handler


def _uvicorn_json() -> None:
    """Make uvicorn format its loggers with :class:`JsonFormatter` when it starts."""
    try:
        from uvicorn.config import LOGGING_CONFIG
    except ImportError:
        return
    # uvicorn applies this dict when it starts (its default log_config); changing it
    # in place keeps its handlers and levels and swaps only the line format
    formatter = {"()": f"{__name__}.JsonFormatter"}
    LOGGING_CONFIG["formatters"] = {"default": dict(formatter), "access": dict(formatter)}
