"""Benchmark: sidecar run throughput, 1 and 2 replicas on PostgreSQL against 1 on SQLite.

Run it from the repository root (it starts its own PostgreSQL server on a temp folder
with ``tests/postgres_server.py``; as root it runs the server as ``postgres``)::

    .venv/bin/python tests/benchmarks/bench_replicas.py [--runs 200] [--clients 12]
        [--latency 0.03] [--repeats 3] [--wait events|poll] [--no-fsync] [--quick]

Three configurations of real ``python -m langchain_runtime serve`` processes on
loopback ports, one config file for all (a workflow ``chain`` of 3 prompt tasks on
the ``simulated`` provider, ``--latency`` seconds per call, 16-token answers):

* **SQLite x1**: one replica with ``--store FILE`` (the one-host setup the README
  recommends; the store fsyncs every commit, ``synchronous=FULL``) - the baseline;
* **PostgreSQL x1**: one replica with ``--database postgresql://...`` (its own fresh
  database);
* **PostgreSQL x2**: two replicas on one (another fresh) database.

By default the PostgreSQL server flushes its WAL at every commit (``fsync=on``,
``synchronous_commit=on``: as durable as the SQLite store); ``--no-fsync`` runs it
as the test suite does.

Load: ``--runs`` runs per measurement, submitted by ``--clients`` threads (one
``httpx.Client`` each); run ``i`` goes to replica ``i mod replicas`` (round robin),
and its client waits for it on that replica before submitting the next: by default
on its server-sent event stream (``GET /runs/{id}/events`` until ``event: end``;
no polling load on the server), with ``--wait poll`` by ``GET /runs/{id}`` every
``--poll`` seconds. Latency is submit -> the end of the run seen by its client;
throughput is runs / (first submit -> last completion). Every run must end
``completed`` (the ``end`` event's state, or the polled one), and after the clock
stops every run is read back through the *other* replica (or the only one) and
checked: completed, 3 tasks; anything else aborts the benchmark with the run named.
Every wait has a timeout.

Concurrency limits: ``serve`` admits at most 16 executing runs per replica
(``max_concurrent_runs``, not a ``--limit``; more are refused with 429). Each client
has one run in flight, so ``--clients`` <= 16 stays under the cap on every
configuration; a 429 is retried after 20 ms and counted in the output (it should be
0). The per-request ``--limit`` bounds (tasks, prompt size, parallelism) do not bind
for 3-task runs.

Method: every configuration is started once and warmed up (checked runs), then
``--repeats`` rounds, configurations interleaved (order rotated per round) so they
share the machine's noise. Reported per configuration: median runs/s, p50/p99 of
all rounds' latencies, the median of the per-round throughput ratios against
SQLite x1, the machine's CPU busy share during the measurement (``/proc/stat``)
and the replicas' CPU milliseconds per run.

This VM has 2 cores: the replicas, the PostgreSQL server and this load generator
(Python threads) all compete for them, so the second replica adds processes, not
CPUs; the figures are what this machine measures, not a scaling curve. The exit
code is 0 once every run completed (a measurement, not a test).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.postgres_server import PostgresServer  # noqa: E402

TASKS = 3
SERVER_CAP = 16  # RunManager's max_concurrent_runs under `serve` (not configurable there)
START_TIMEOUT = 60.0


def config(latency: float) -> dict[str, Any]:
    """The one config file of every replica: a 3-task chain on the simulated model."""
    return {
        "models": {"sim": {"provider": "simulated", "response_tokens": 16, "latency": latency}},
        "workflows": {
            "chain": {
                "model": "sim",
                "tasks": [
                    {"id": "draft", "prompt": "Draft about {topic}"},
                    {"id": "edit", "prompt": "Edit: {draft}", "deps": ["draft"]},
                    {"id": "title", "prompt": "Title for: {edit}", "deps": ["edit"]},
                ],
            }
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_postgres(fsync: bool) -> PostgresServer:
    """The test server, started with WAL flushes on (durable) or off (as in the tests)."""
    server = PostgresServer()
    server.start(durable=fsync)
    return server


class Replica:
    """``python -m langchain_runtime serve`` on a free loopback port; stderr to a file."""

    def __init__(self, config_file: Path, storage: list[str], log: Path) -> None:
        port = str(free_port())
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("LANGCHAIN_RUNTIME_TOKEN", "LANGCHAIN_RUNTIME_DB")
        }
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "langchain_runtime", "serve", "--port", port,
                 "--config", str(config_file), *storage],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"replica {self.url} exited: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"replica {self.url} did not answer /healthz within {START_TIMEOUT:g} s")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class Config:
    name: str
    replicas: list[Replica]
    walls: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    cpu_per_run: list[float] = field(default_factory=list)
    retries: int = 0


@dataclass
class Phase:
    wall: float
    latencies: list[float]
    retries: int
    run_ids: list[tuple[int, str]]


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class RunFailed(Exception):
    pass


def wait_events(client: httpx.Client, run_id: str, deadline: float) -> str:
    """The final state of ``run_id`` from its event stream (``event: end``)."""
    url = f"/api/v1/runs/{run_id}/events"
    try:
        with client.stream("GET", url, timeout=max(deadline - time.monotonic(), 0.1)) as r:
            if r.status_code != 200:
                raise RunFailed(f"run {run_id}: GET events answered {r.status_code}")
            ended = False
            for line in r.iter_lines():
                if time.monotonic() > deadline:
                    break
                if line == "event: end":
                    ended = True
                elif ended and line.startswith("data:"):
                    return str(json.loads(line[5:])["state"])
    except httpx.TimeoutException:
        raise RunFailed(f"run {run_id}: no end event within the run timeout") from None
    raise RunFailed(f"run {run_id}: its event stream ended without an end event in time")


def wait_poll(client: httpx.Client, run_id: str, deadline: float, poll: float) -> str:
    """The final state of ``run_id``, by ``GET /runs/{id}`` every ``poll`` seconds."""
    while time.monotonic() < deadline:
        r = client.get(f"/api/v1/runs/{run_id}")
        if r.status_code != 200:
            raise RunFailed(f"run {run_id}: GET answered {r.status_code}: {r.text[:200]}")
        state = str(r.json()["state"])
        if state not in ("pending", "running", "aborting"):
            return state
        time.sleep(poll)
    raise RunFailed(f"run {run_id}: not finished within the run timeout")


def phase(
    urls: list[str], runs: int, clients: int, wait: Callable[[httpx.Client, str, float], str],
    run_timeout: float, tag: str,
) -> Phase:  # fmt: skip
    """``runs`` runs by ``clients`` threads, round robin over ``urls``; all completed."""
    counter = itertools.count()
    lock = threading.Lock()
    starts: list[float] = []
    ends: list[float] = []
    latencies: list[float] = []
    run_ids: list[tuple[int, str]] = []
    errors: list[str] = []
    retries = [0]

    def client_thread() -> None:
        http = {u: httpx.Client(base_url=u, timeout=10) for u in urls}
        try:
            while not errors:
                with lock:
                    i = next(counter)
                if i >= runs:
                    return
                replica = i % len(urls)
                client = http[urls[replica]]
                body = {"workflow": "chain", "input": {"topic": f"{tag} #{i}"}}
                deadline = time.monotonic() + run_timeout
                start = time.perf_counter()
                while True:
                    r = client.post("/api/v1/runs", json=body)
                    if r.status_code != 429 or time.monotonic() > deadline:
                        break
                    with lock:
                        retries[0] += 1
                    time.sleep(0.02)
                if r.status_code != 202:
                    raise RunFailed(f"POST /runs to {urls[replica]}: {r.status_code} {r.text}")
                run_id = str(r.json()["run_id"])
                state = wait(client, run_id, deadline)
                end = time.perf_counter()
                if state != "completed":
                    raise RunFailed(f"run {run_id} on {urls[replica]} ended {state!r}")
                with lock:
                    starts.append(start)
                    ends.append(end)
                    latencies.append(end - start)
                    run_ids.append((replica, run_id))
        except Exception as exc:  # reported by the main thread, which stops the others
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            for c in http.values():
                c.close()

    threads = [threading.Thread(target=client_thread, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(run_timeout * (runs / clients + 2))
        if t.is_alive():
            errors.append("a client thread did not finish in time")
            break
    if errors:
        raise SystemExit(f"{tag}: {errors[0]}")
    if len(latencies) != runs:
        raise SystemExit(f"{tag}: {len(latencies)} of {runs} runs completed")
    return Phase(max(ends) - min(starts), latencies, retries[0], run_ids)


def check_stored(urls: list[str], run_ids: list[tuple[int, str]], tag: str) -> None:
    """Every run, read through the other replica (or the only one): completed, 3 tasks."""
    clients = [httpx.Client(base_url=u, timeout=10) for u in urls]
    try:
        for replica, run_id in run_ids:
            reader = clients[(replica + 1) % len(urls)]
            r = reader.get(f"/api/v1/runs/{run_id}")
            body = r.json() if r.status_code == 200 else {}
            tasks = body.get("tasks", {})
            done = [t for t in tasks.values() if t.get("state") == "completed"]
            if body.get("state") != "completed" or len(done) != TASKS:
                raise SystemExit(
                    f"{tag}: run {run_id} read through {reader.base_url}: HTTP "
                    f"{r.status_code}, state {body.get('state')!r}, {len(done)}/{TASKS} tasks "
                    "completed"
                )
    finally:
        for c in clients:
            c.close()


def measure(cfg: Config, args: argparse.Namespace, runs: int, tag: str) -> Phase:
    urls = [r.url for r in cfg.replicas]
    cpu0 = sum(r.cpu_seconds() for r in cfg.replicas)
    busy0, total0 = machine_busy()
    got = phase(urls, runs, args.clients, args.waiter, args.run_timeout, tag)
    busy1, total1 = machine_busy()
    cpu1 = sum(r.cpu_seconds() for r in cfg.replicas)
    check_stored(urls, got.run_ids, tag)
    cfg.busy.append((busy1 - busy0) / max(total1 - total0, 1))
    cfg.cpu_per_run.append((cpu1 - cpu0) / runs)
    return got


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per measurement")
    parser.add_argument("--clients", type=int, default=12, help="concurrent client threads")
    parser.add_argument("--latency", type=float, default=0.03, help="seconds per model call")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--wait", choices=["events", "poll"], default="events")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between polls")
    parser.add_argument("--run-timeout", type=float, default=60.0, help="most seconds per run")
    parser.add_argument("--no-fsync", action="store_true", help="PostgreSQL with fsync=off")
    parser.add_argument("--quick", action="store_true", help="60 runs, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.repeats = 60, 1
    if args.runs < 1 or args.clients < 1 or args.repeats < 1 or args.latency < 0:
        parser.error("--runs, --clients and --repeats must be >= 1, --latency >= 0")
    if args.wait == "events":
        args.waiter = wait_events
    else:
        args.waiter = lambda c, run_id, deadline: wait_poll(c, run_id, deadline, args.poll)

    pg = start_postgres(fsync=not args.no_fsync)
    replicas: list[Replica] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
            try:
                run(args, pg, Path(tmp), replicas)
            finally:
                for r in replicas:
                    r.stop()
    finally:
        pg.destroy()


def run(
    args: argparse.Namespace, pg: PostgresServer, folder: Path, replicas: list[Replica]
) -> None:
    config_file = folder / "server.json"
    config_file.write_text(json.dumps(config(args.latency)), encoding="utf-8")
    logs = (folder / f"replica-{i}.log" for i in itertools.count())

    def replica(storage: list[str]) -> Replica:
        replicas.append(Replica(config_file, storage, next(logs)))
        return replicas[-1]

    one_db, two_db = pg.create_database(), pg.create_database()
    configs = [
        Config("SQLite x1", [replica(["--store", str(folder / "runs.sqlite3")])]),
        Config("PostgreSQL x1", [replica(["--database", one_db])]),
        Config("PostgreSQL x2", [replica(["--database", two_db]) for _ in range(2)]),
    ]
    for cfg in configs:  # warm-up, checked like the measurements
        measure(cfg, args, 2 * args.clients, f"{cfg.name} warm-up")
        cfg.busy.clear()
        cfg.cpu_per_run.clear()
    fsync = "off" if args.no_fsync else "on"
    wait = "on the event stream" if args.wait == "events" else f"polling every {args.poll:g} s"
    print(
        f"{args.runs} runs x {args.repeats} rounds of a {TASKS}-task chain, simulated "
        f"model {args.latency * 1e3:g} ms/call; {args.clients} clients (one run in "
        f"flight each, round robin over replicas), waiting {wait}; PostgreSQL "
        f"{pg.bindir.parent.name} fsync={fsync}; SQLite store synchronous=FULL; "
        f"{os.cpu_count()} CPUs (python {sys.version.split()[0]})"
    )
    if args.clients > SERVER_CAP:
        print(
            f"note: --clients {args.clients} > {SERVER_CAP} executing runs a `serve` "
            "replica admits: expect 429s (retried, counted below)"
        )
    for rnd in range(args.repeats):
        order = configs[rnd % len(configs) :] + configs[: rnd % len(configs)]
        got = {cfg.name: measure(cfg, args, args.runs, f"{cfg.name} round {rnd + 1}")
               for cfg in order}  # fmt: skip
        base = args.runs / got["SQLite x1"].wall
        line = []
        for cfg in configs:
            p = got[cfg.name]
            cfg.rates.append(args.runs / p.wall)
            cfg.ratios.append(cfg.rates[-1] / base)
            cfg.latencies.extend(p.latencies)
            cfg.retries += p.retries
            line.append(f"{cfg.name} {cfg.rates[-1]:.1f}/s")
        print(f"  round {rnd + 1}: " + ", ".join(line))
    print(
        f"{'configuration':<15}{'runs/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'x SQLite':>10}{'CPU busy':>10}{'replica CPU ms/run':>20}{'429s':>6}"
    )
    for cfg in configs:
        print(
            f"{cfg.name:<15}{statistics.median(cfg.rates):>8.1f}"
            f"{pct(cfg.latencies, 0.5) * 1e3:>9.0f}{pct(cfg.latencies, 0.99) * 1e3:>9.0f}"
            f"{statistics.median(cfg.ratios):>9.2f}x"
            f"{statistics.median(cfg.busy) * 100:>9.0f}%"
            f"{statistics.median(cfg.cpu_per_run) * 1e3:>20.1f}{cfg.retries:>6}"
        )
    if args.latency:
        print(
            f"(floor {TASKS * args.latency * 1e3:g} ms/run of model latency: {args.clients} "
            f"clients could reach {args.clients / (TASKS * args.latency):.0f} runs/s with no "
            "overhead; CPU busy: share of all CPUs during the measurement; replica CPU: the "
            "serve processes only, not PostgreSQL nor the clients)"
        )


if __name__ == "__main__":
    main()
