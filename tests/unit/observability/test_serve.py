"""``langchain-runtime serve --log-format json --otel`` as a real process on a socket.

Spans go over OTLP/HTTP to a receiver in this test; the run's trace id in its status
is the trace the receiver got.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

ROOT = Path(__file__).resolve().parents[3]
CONFIG = """
models:
  fast: {provider: simulated, response_tokens: 8}
workflows:
  hello:
    tasks:
      - {id: greet, prompt: "Greet {name}", model: fast}
      - {id: shout, prompt: "Shout {greet}", model: fast, deps: [greet]}
"""


class Receiver(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        Receiver.bodies.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_json_logs_and_otlp_traces(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    Receiver.bodies = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",
        "OTEL_SERVICE_NAME": "lcr-test",
        "LANGCHAIN_RUNTIME_TOKEN": "",
    }
    cmd = [sys.executable, "-c", "from langchain_runtime.cli import main; main()", "serve",
           "--port", str(port), "--store", ":memory:", "--config", str(config),
           "--log-format", "json", "--otel"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        run_id = httpx.post(
            f"{base}/api/v1/runs", json={"workflow": "hello", "input": {"name": "Ada"}}, timeout=5
        ).json()["run_id"]
        deadline = time.monotonic() + 30
        while True:
            status = httpx.get(f"{base}/api/v1/runs/{run_id}", timeout=5).json()
            if status["state"] == "completed":
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            receiver.shutdown()
            receiver.server_close()
    # every log line is one JSON object; uvicorn's access log (on stdout) included
    output = (stdout + stderr).splitlines()
    lines = [json.loads(line) for line in output if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    assert any(x["logger"] == "uvicorn.access" and "/api/v1/runs" in x["message"] for x in lines)
    assert any(run_id in x["message"] for x in lines if x["logger"].startswith("langchain_runtime"))
    # the trace the collector received is the one the run's status names
    trace_id = status["trace_id"]
    assert len(trace_id) == 32
    spans = []
    for path, body in Receiver.bodies:
        if path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    spans.extend(ss.spans)
    names = {s.name for s in spans if s.trace_id.hex() == trace_id}
    assert {"invoke_workflow hello", "task greet", "task shout", "chat simulated"} <= names
    assert any(p == "/v1/metrics" for p, _ in Receiver.bodies)


def test_serve_otel_without_an_endpoint_is_a_clear_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", "from langchain_runtime.cli import main; main()", "serve",
         "--otel", "--store", ":memory:"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in out.stderr
