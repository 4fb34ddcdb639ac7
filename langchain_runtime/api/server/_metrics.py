"""Server metrics in the Prometheus text format (written by hand: no extra dependency).

Counters live for the process; the run counts per state come from the store, so
they include runs from before a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from decimal import Decimal

from langchain_runtime.api.schemas import RunStatus

__all__ = ["Metrics"]

PREFIX = "langchain_runtime"
_RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


class _Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def render(self, name: str, labels: Mapping[str, str]) -> list[str]:
        lines = []
        for bound, count in zip(self.buckets, self.counts, strict=True):
            lines.append(f"{name}_bucket{_labels({**labels, 'le': repr(bound)})} {count}")
        lines.append(f"{name}_bucket{_labels({**labels, 'le': '+Inf'})} {self.total}")
        lines.append(f"{name}_sum{_labels(labels)} {self.sum!r}")
        lines.append(f"{name}_count{_labels(labels)} {self.total}")
        return lines


class Metrics:
    """What the server counts: runs, tasks, tokens, cost, run and request latency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.submitted = 0
        self.tasks: dict[str, int] = {}
        self.tokens: dict[str, int] = {"input": 0, "output": 0}
        self.cost: dict[str, Decimal] = {}
        self.run_seconds = _Histogram(_RUN_BUCKETS)
        self.http: dict[tuple[str, str, str], int] = {}
        self.http_seconds: dict[str, _Histogram] = {}

    def run_submitted(self) -> None:
        with self._lock:
            self.submitted += 1

    def run_finished(self, status: RunStatus, seconds: float) -> None:
        with self._lock:
            self.run_seconds.observe(seconds)
            for task in status.tasks.values():
                self.tasks[task.state.value] = self.tasks.get(task.state.value, 0) + 1
            self.tokens["input"] += status.usage.input_tokens
            self.tokens["output"] += status.usage.output_tokens
            currency = status.cost.currency
            self.cost[currency] = self.cost.get(currency, Decimal(0)) + status.cost.amount

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, str(status))
            self.http[key] = self.http.get(key, 0) + 1
            hist = self.http_seconds.get(route)
            if hist is None:
                hist = self.http_seconds[route] = _Histogram(_HTTP_BUCKETS)
            hist.observe(seconds)

    def render(self, runs_by_state: Mapping[str, int], active: int) -> str:
        """The exposition text (``text/plain; version=0.0.4``)."""
        p = PREFIX
        out = [
            f"# HELP {p}_runs Runs in the store, by state.",
            f"# TYPE {p}_runs gauge",
            *(f"{p}_runs{_labels({'state': s})} {n}" for s, n in sorted(runs_by_state.items())),
            f"# HELP {p}_active_runs Runs executing now.",
            f"# TYPE {p}_active_runs gauge",
            f"{p}_active_runs {active}",
        ]
        with self._lock:
            out += [
                f"# HELP {p}_runs_submitted_total Runs accepted since the server started.",
                f"# TYPE {p}_runs_submitted_total counter",
                f"{p}_runs_submitted_total {self.submitted}",
                f"# HELP {p}_tasks_total Tasks of finished runs, by final state.",
                f"# TYPE {p}_tasks_total counter",
                *(
                    f"{p}_tasks_total{_labels({'state': s})} {n}"
                    for s, n in sorted(self.tasks.items())
                ),
                f"# HELP {p}_tokens_total Tokens used by finished runs.",
                f"# TYPE {p}_tokens_total counter",
                *(
                    f"{p}_tokens_total{_labels({'kind': k})} {n}"
                    for k, n in sorted(self.tokens.items())
                ),
                f"# HELP {p}_cost_total Money spent by finished runs.",
                f"# TYPE {p}_cost_total counter",
                *(
                    f"{p}_cost_total{_labels({'currency': c})} {a:f}"
                    for c, a in sorted(self.cost.items())
                ),
                f"# HELP {p}_run_duration_seconds Wall time of finished runs.",
                f"# TYPE {p}_run_duration_seconds histogram",
                *self.run_seconds.render(f"{p}_run_duration_seconds", {}),
                f"# HELP {p}_http_requests_total HTTP requests, by route and status.",
                f"# TYPE {p}_http_requests_total counter",
                *(
                    f"{p}_http_requests_total{_labels({'method': m, 'route': r, 'status': s})} {n}"
                    for (m, r, s), n in sorted(self.http.items())
                ),
                f"# HELP {p}_http_request_duration_seconds HTTP request latency, by route.",
                f"# TYPE {p}_http_request_duration_seconds histogram",
            ]
            for route, hist in sorted(self.http_seconds.items()):
                out += hist.render(f"{p}_http_request_duration_seconds", {"route": route})
        return "\n".join(out) + "\n"
