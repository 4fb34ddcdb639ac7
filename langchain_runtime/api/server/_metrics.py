"""Server metrics with ``prometheus_client`` (part of the ``server`` extra).

Each app has its own registry, so two apps in one process (tests, notebooks) never
share counts. Label values are bounded by construction: HTTP routes are route
templates (``/api/v1/runs/{run_id}``) or ``unmatched``, methods a fixed set (the
guard maps the rest to ``OTHER``), states the enums, and models the server's own
configuration (at most ``MAX_MODELS``; any more count as ``other``). Run ids and raw
paths never become labels.

Counters live for the process; the run counts per state come from the store at each
scrape, so they include runs from before a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from langchain_runtime.api.schemas import RunStatus

__all__ = ["MAX_MODELS", "Metrics"]

PREFIX = "langchain_runtime"
#: Distinct model label values kept; further models are counted as ``other``.
MAX_MODELS = 64
_RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
_INSTALL = "pip install 'langchain-runtime[server]'"


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError(
            f"the server's /metrics needs prometheus-client; install it with: {_INSTALL}"
        ) from exc
    return prometheus_client


class _Live:
    """Gauges read at scrape time: runs in the store by state, runs executing now."""

    def __init__(self) -> None:
        self.runs_by_state: Mapping[str, int] = {}
        self.active = 0

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        runs = GaugeMetricFamily(f"{PREFIX}_runs", "Runs in the store, by state.", labels=["state"])
        for state, count in sorted(self.runs_by_state.items()):
            runs.add_metric([state], count)
        yield runs
        yield GaugeMetricFamily(f"{PREFIX}_active_runs", "Runs executing now.", value=self.active)


class Metrics:
    """What the server counts: requests, runs, tasks, tokens and cost by model, refusals.

    Example:
        >>> metrics = Metrics()
        >>> metrics.http_request("GET", "/healthz", 200, 0.002)
        >>> 'route="/healthz",status="200"' in metrics.render({"completed": 1}, 0)
        True
    """

    def __init__(self) -> None:
        prom = _prometheus()
        self.registry = prom.CollectorRegistry()
        self.content_type: str = prom.exposition.CONTENT_TYPE_LATEST
        self._generate = prom.generate_latest
        self._lock = threading.Lock()
        self._live = _Live()
        self.registry.register(self._live)
        reg = self.registry
        c, h = prom.Counter, prom.Histogram
        self._submitted = c(
            f"{PREFIX}_runs_submitted", "Runs accepted since the server started.", registry=reg
        )
        self._finished = c(
            f"{PREFIX}_runs_finished", "Runs finished since start, by state.", ["state"],
            registry=reg,
        )  # fmt: skip
        self._run_seconds = h(
            f"{PREFIX}_run_duration_seconds", "Wall time of finished runs.",
            buckets=_RUN_BUCKETS, registry=reg,
        )  # fmt: skip
        self._tasks = c(
            f"{PREFIX}_tasks", "Tasks of finished runs, by final state.", ["state"], registry=reg
        )
        self._tokens = c(
            f"{PREFIX}_tokens", "Tokens used by finished runs.", ["kind"], registry=reg
        )
        self._cost = c(
            f"{PREFIX}_cost", "Money spent by finished runs.", ["currency"], registry=reg
        )
        self._model_tokens = c(
            f"{PREFIX}_model_tokens", "Tokens used by finished runs, by model and kind.",
            ["model", "kind"], registry=reg,
        )  # fmt: skip
        self._model_cost = c(
            f"{PREFIX}_model_cost", "Money spent by finished runs, by model.",
            ["model", "currency"], registry=reg,
        )  # fmt: skip
        self._refusals = c(
            f"{PREFIX}_budget_refusals",
            "Budget refusals in finished runs (a task's call refused, or a run refused "
            "before it started).",
            registry=reg,
        )
        self._dead_charges = c(
            f"{PREFIX}_dead_run_charges",
            "Calls in flight when their run's process died, charged at their hold in the "
            "ledger (by this server's sweeps and restart).",
            registry=reg,
        )
        self._http = c(
            f"{PREFIX}_http_requests", "HTTP requests, by method, route and status.",
            ["method", "route", "status"], registry=reg,
        )  # fmt: skip
        self._http_seconds = h(
            f"{PREFIX}_http_request_duration_seconds", "HTTP request latency, by route.",
            ["method", "route"], buckets=_HTTP_BUCKETS, registry=reg,
        )  # fmt: skip
        self._models: set[str] = set()
        for kind in ("input", "output"):
            self._tokens.labels(kind)  # present from the first scrape

    def _model_label(self, model: str) -> str:
        with self._lock:
            if model in self._models:
                return model
            if len(self._models) < MAX_MODELS:
                self._models.add(model)
                return model
        return "other"

    def run_submitted(self) -> None:
        self._submitted.inc()

    def run_finished(self, status: RunStatus, seconds: float) -> None:
        """Count a run that has ended (its final, stored status)."""
        self._finished.labels(status.state).inc()
        self._run_seconds.observe(seconds)
        refusals = 0
        for task in status.tasks.values():
            self._tasks.labels(task.state.value).inc()
            if task.error is not None and task.error.code == "budget_exceeded":
                refusals += 1
        if refusals == 0 and status.state == "budget_exceeded":
            refusals = 1  # refused as a whole (admission), before any task
        if refusals:
            self._refusals.inc(refusals)
        self._tokens.labels("input").inc(status.usage.input_tokens)
        self._tokens.labels("output").inc(status.usage.output_tokens)
        self._cost.labels(status.cost.currency).inc(float(status.cost.amount))
        for name, used in status.models.items():
            model = self._model_label(name)
            for kind, n in (
                ("input", used.usage.input_tokens),
                ("output", used.usage.output_tokens),
                ("cache_read", used.usage.cache_read_tokens),
                ("reasoning", used.usage.reasoning_tokens),
            ):
                self._model_tokens.labels(model, kind).inc(n)
            self._model_cost.labels(model, used.cost.currency).inc(float(used.cost.amount))

    def dead_run_charges(self, leases: int) -> None:
        """Count ``leases`` of dead runs charged at their hold."""
        self._dead_charges.inc(leases)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request (``route`` is a route template or ``unmatched``)."""
        self._http.labels(method, route, str(status)).inc()
        self._http_seconds.labels(method, route).observe(seconds)

    def render(self, runs_by_state: Mapping[str, int], active: int) -> str:
        """The exposition text (:attr:`content_type`)."""
        with self._lock:
            self._live.runs_by_state = dict(runs_by_state)
            self._live.active = active
            text: bytes = self._generate(self.registry)
        return text.decode()
