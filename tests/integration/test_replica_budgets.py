"""Two ``serve`` replicas on one PostgreSQL database share one team budget; one replica
is SIGKILLed (twice) with calls in flight.

The provider is a mocked OpenAI chat completions API on loopback sockets in this
process, one listener per replica (their configs differ only in ``base_url`` and the
client ``timeout``), so it knows which replica sent each call. It answers every call at
the full length it was allowed (``completion_tokens`` = the ``max_completion_tokens``
it was sent) and counts the input the way ``TokenEstimator`` does, so each call costs
exactly what the runtime reserved for it. It bills a call when the call arrives, in
its own book. Every few calls of replica 2 are answered after its client timed out
(billed all the same). On command it holds (never answers) the calls of replica 1;
the test then kills replica 1 once every one of its unfinished runs is stuck on a held
call: those calls are billed and never delivered. The runs they interrupted resume on
replica 2; replica 1 restarts and is killed again the same way. Runs of two API keys
(``key:a``, ``key:b``, both in ``team:t``) go through both replicas at once until the
limits refuse them.

In every trial: what the provider billed fits the team's cost and token limits and
each key's limit, and some runs were refused; the held calls are charged at their hold
when replica 2 finds their runs dead, so nothing stays reserved in any scope (nor after
the leases' expiry), and ``spent`` is exactly what the provider billed, the calls it
answered (late ones included) and the held ones; every answered call was settled once
and every held one charged once, every billed call reserved once; and each run reports
exactly the cost of its answered calls.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

pytest.importorskip("fastapi", reason="needs the 'server' extra")
pytest.importorskip("langchain_openai", reason="needs langchain-openai")

from langchain_runtime.api.server._keys import hash_key
from langchain_runtime.cost import CostCalculator, TokenEstimator
from langchain_runtime.cost.ledger import DEFAULT_LEASE_TTL, open_ledger
from langchain_runtime.domain import Usage

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MODEL = "gpt-4o-mini"
OUTPUT = 120  # the model's own max_tokens: what a call asks for unless clamped
TEAM = "team:t"
KEYS = {"a": "replica-budget-key-a-" + "a" * 30, "b": "replica-budget-key-b-" + "b" * 30}
ADMIN = {"authorization": "Bearer replica-budget-admin-" + "c" * 30}
LIMITS = {  # scope -> (max_cost, max_tokens)
    TEAM: (Decimal("0.0040"), 8_800),
    "key:a": (Decimal("0.0017"), None),
    "key:b": (Decimal("0.0035"), None),
}
STALE_AFTER = 2.0
WORKERS = 6
MAX_RUNS = 18  # per worker, at most
HOLD_AFTER = 6  # calls billed (in the round) before replica 1's calls are held
HELD = 2  # calls of replica 1 held (at least) when it is killed
LATE = 1.0  # replica 2's client timeout; every LATE_EVERY-th call of it is answered later
LATE_EVERY = 8
WAIT = 60.0  # every wait is bounded by this


def _headers(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[key]}"}


# -- the provider ----------------------------------------------------------------------


@dataclass(frozen=True)
class Bill:
    """One call the provider billed (when it arrived)."""

    replica: int  # the listener it came in on
    run_id: str
    task: str
    input_tokens: int
    output_tokens: int
    cost: Decimal
    held: bool  # held, never answered (its replica was killed)
    late: bool  # answered after the replica had given up on it (its client timed out)

    @property
    def key(self) -> str:
        return self.run_id.split("-", 1)[0]

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


_TAG = re.compile(r"^(s\d) on (\S+)")


class Provider:
    """A mocked OpenAI chat completions API: one loopback listener per replica, one book."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.estimator = TokenEstimator()
        self.calculator = CostCalculator()
        self.bills: list[Bill] = []
        self.errors: list[str] = []  # requests it could not answer (the test's bugs)
        self.lock = threading.Lock()
        self.holding = False  # hold replica 1's calls
        self.released = threading.Event()  # lets go of held calls (their replica is dead)
        self.servers = [self._listen(1), self._listen(2)]
        self.threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in self.servers
        ]
        for thread in self.threads:
            thread.start()

    def base_url(self, replica: int) -> str:
        host, port = self.servers[replica - 1].server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def count(self, held: bool | None = None) -> int:
        with self.lock:
            return sum(held is None or b.held == held for b in self.bills)

    def snapshot(self) -> list[Bill]:
        with self.lock:
            return list(self.bills)

    def hold(self) -> None:
        with self.lock:
            self.released.clear()
            self.holding = True

    def release(self) -> None:
        """Stop holding; the held calls' handlers return without answering."""
        with self.lock:
            self.holding = False
            self.released.set()

    def close(self) -> None:
        self.release()
        for server in self.servers:
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(10)

    def bill(self, replica: int, body: dict[str, Any]) -> tuple[Bill, dict[str, Any]]:
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        assert isinstance(limit, int) and 0 < limit <= OUTPUT, f"bad output limit: {body}"
        assert body["model"] == MODEL and not body.get("stream"), body
        text = body["messages"][-1]["content"]
        tag = _TAG.match(text)
        assert tag is not None, f"a prompt the test did not write: {text!r}"
        prompt = self.estimator.count_messages(body["messages"], MODEL)
        usage = Usage(input_tokens=prompt, output_tokens=limit)
        with self.lock:
            held = replica == 1 and self.holding
            late = replica == 2 and sum(b.replica == 2 for b in self.bills) % LATE_EVERY == 3
            bill = Bill(
                replica, tag.group(2), tag.group(1), prompt, limit,
                self.calculator.cost(MODEL, usage).amount, held, late,
            )  # fmt: skip
            self.bills.append(bill)
            latency = LATE + 0.5 if late else self.rng.uniform(0.005, 0.06)
        answer = {
            "id": f"chatcmpl-{len(self.bills)}",
            "object": "chat.completion",
            "created": 1,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    # exactly ``limit`` tokens: one per " owl"
                    "message": {"role": "assistant", "content": " owl" * limit},
                    "finish_reason": "length",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": limit,
                "total_tokens": prompt + limit,
            },
        }
        if not held:
            time.sleep(latency)
        return bill, answer

    def _listen(self, replica: int) -> ThreadingHTTPServer:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                try:
                    bill, answer = provider.bill(replica, body)
                except Exception as exc:
                    provider.errors.append(repr(exc))
                    self.send_error(500)
                    return
                if bill.held:
                    # billed, never answered: its replica is killed meanwhile
                    provider.released.wait(WAIT * 2)
                    self.close_connection = True
                    return
                data = json.dumps(answer).encode()
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    assert bill.late, bill  # only a late answer finds its client gone

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.request_queue_size = 64
        return server


# -- the replicas ----------------------------------------------------------------------


def _config(base_url: str, timeout: float) -> dict[str, Any]:
    chain = ["s1 on {topic}", "s2 on {topic} after {s1}", "s3 on {topic} after {s2}"]
    return {
        "models": {
            "gpt": {"provider": "openai", "model": MODEL, "base_url": base_url,
                    "max_tokens": OUTPUT, "max_retries": 0, "timeout": timeout},
        },
        "server": {
            "api_keys": [
                {"name": "alice", "hash": hash_key(KEYS["a"]), "scopes": ["key:a", TEAM]},
                {"name": "bob", "hash": hash_key(KEYS["b"]), "scopes": ["key:b", TEAM]},
                {"name": "ops", "hash": hash_key(ADMIN["authorization"][7:]), "admin": True},
            ]
        },
        "workflows": {
            f"w{n}": {
                "model": "gpt",
                "tasks": [
                    {"id": f"s{i + 1}", "prompt": chain[i], "deps": [f"s{i}"][: min(i, 1)]}
                    for i in range(n)
                ],
            }
            for n in (1, 2, 3)
        },
    }  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """``python -m langchain_runtime serve --database DSN`` on a free loopback port."""

    def __init__(self, config: Path, database: str, log: Path) -> None:
        port = str(_free_port())
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        env = {k: v for k, v in os.environ.items() if k != "LANGCHAIN_RUNTIME_TOKEN"}
        env["OPENAI_API_KEY"] = "sk-test-dummy"  # never in the config file
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "langchain_runtime", "serve", "--port", port,
                 "--config", str(config), "--database", database,
                 "--stale-after", str(STALE_AFTER)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"replica exited ({self.proc.returncode}): {self.tail()}")
            try:
                if self.client.get("/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"replica {self.url} did not answer within {WAIT}s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.kill()


def _wait_until(what: str, done: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting until {what}")


# -- the workload ----------------------------------------------------------------------


@dataclass
class Submitted:
    run_id: str
    replica: int  # 1 or 2
    process: int  # which replica-1 process it went to (0 for replica 2)


class Workload:
    """Worker threads submitting runs to both replicas, with both keys, and waiting for
    each to end; replica 1 is closed to new runs while it is being killed."""

    def __init__(self, seed: int, one: Replica, two: Replica) -> None:
        self.seed = seed
        self.one: Replica | None = one
        self.one_process = 1
        self.two = two
        self.lock = threading.Lock()  # held while submitting to replica 1
        self.runs: list[Submitted] = []
        self.refused: Counter[str] = Counter()  # key -> 402s at submission
        self.final: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []
        self.go = threading.Event()  # cleared: no new runs anywhere (a replica is killed)
        self.go.set()
        self.threads = [threading.Thread(target=self._work, args=(w,)) for w in range(WORKERS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        deadline = time.monotonic() + WAIT * 2
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "workers did not finish"
        assert not self.errors, self.errors

    def pause(self) -> None:
        """No new runs (on either replica) until :meth:`resume`; replica 1 is closed."""
        self.go.clear()
        with self.lock:
            self.one = None

    def resume(self, one: Replica | None = None) -> None:
        """New runs again, on replica 1 too when it is given (a new process)."""
        with self.lock:
            if one is not None:
                self.one = one
                self.one_process += 1
        self.go.set()

    def on_one(self, process: int) -> list[str]:
        with self.lock:
            return [r.run_id for r in self.runs if r.replica == 1 and r.process == process]

    def _submit(self, rng: random.Random, key: str, run_id: str) -> httpx.Response:
        """POST the run to replica 1 (half the time, when it is open) or replica 2."""
        body = {"id": run_id, "workflow": f"w{rng.randint(1, 3)}", "input": {"topic": run_id}}
        if rng.random() < 0.5:
            with self.lock:
                if self.one is not None:
                    answer = self.one.client.post("/api/v1/runs", json=body, headers=_headers(key))
                    if answer.status_code == 202:
                        self.runs.append(Submitted(run_id, 1, self.one_process))
                    return answer
        answer = self.two.client.post("/api/v1/runs", json=body, headers=_headers(key))
        if answer.status_code == 202:
            with self.lock:
                self.runs.append(Submitted(run_id, 2, 0))
        return answer

    def _work(self, worker: int) -> None:
        rng = random.Random(self.seed * 100 + worker)
        refusals = 0
        try:
            for n in range(MAX_RUNS):
                if not self.go.wait(WAIT):
                    raise AssertionError("paused for too long")
                key = rng.choice("ab")
                run_id = f"{key}-s{self.seed}-w{worker}-n{n}"
                answer = self._submit(rng, key, run_id)
                if answer.status_code == 402:
                    self.refused[key] += 1
                    refusals += 1
                elif answer.status_code == 202:
                    body = self.wait(run_id, key)
                    self.final[run_id] = body
                    if body["state"] == "budget_exceeded":
                        refusals += 1
                else:
                    self.errors.append(f"{run_id}: {answer.status_code} {answer.text}")
                    return
                if refusals >= 3:
                    return
        except Exception as exc:  # reported by join
            self.errors.append(f"worker {worker}: {exc!r}")

    def wait(self, run_id: str, key: str) -> dict[str, Any]:
        """The run once it has ended (read through replica 2, which never dies)."""
        return _ended(self.two, run_id, key)


def _ended(replica: Replica, run_id: str, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = replica.client.get(f"/api/v1/runs/{run_id}", headers=_headers(key)).json()
        if body.get("state") not in ("pending", "running"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end in {WAIT}s: {body}")


# -- one trial ---------------------------------------------------------------------------


def _kill_round(
    provider: Provider, workload: Workload, one: Replica, process: int, hold_after: int
) -> int:
    """Hold replica 1's calls once ``hold_after`` calls were billed; once it has
    ``HELD`` calls held, stop new runs, and when every unfinished run of it is stuck on
    a held call, SIGKILL it. Returns how many calls it held."""
    _wait_until(f"{hold_after} calls were billed", lambda: provider.count() >= hold_after)
    before = provider.count(held=True)
    provider.hold()
    _wait_until(f"replica 1 has {HELD} calls held",
                lambda: provider.count(held=True) >= before + HELD)  # fmt: skip
    workload.pause()  # no new runs: the killed replica must be quiet, not busy

    def quiet() -> bool:
        stuck = {b.run_id for b in provider.snapshot() if b.held}
        for run_id in workload.on_one(process):
            if run_id in stuck:
                continue
            state = one.client.get(f"/api/v1/runs/{run_id}", headers=ADMIN).json()["state"]
            if state in ("pending", "running"):
                return False
        return True

    _wait_until("replica 1's unfinished runs all wait on held calls", quiet)
    held = provider.count(held=True) - before
    one.kill()
    provider.release()  # their answers never arrive: the replica is gone
    return held


def _resume_interrupted(provider: Provider, two: Replica) -> list[str]:
    """Resume, on replica 2, every run that was stuck on a held call of replica 1 (once
    replica 2 has found it interrupted); the held call's task runs again there."""
    resumed = []
    for run_id in sorted({b.run_id for b in provider.snapshot() if b.held}):
        key = run_id[0]
        body = _ended(two, run_id, key)
        assert (body["state"], body["error"]["code"]) == ("failed", "interrupted"), body
        answer = two.client.post(f"/api/v1/runs/{run_id}/resume", headers=_headers(key))
        assert answer.status_code in (202, 402), answer.text
        if answer.status_code == 202:
            resumed.append(run_id)
    assert resumed, "no interrupted run could be resumed"
    return resumed


def _run_trial(database: str, tmp_path: Path, seed: int) -> None:
    provider = Provider(seed)
    configs = []
    for replica, timeout in ((1, WAIT * 3), (2, LATE)):
        path = tmp_path / f"replica{replica}.json"
        config = _config(provider.base_url(replica), timeout)
        path.write_text(json.dumps(config), encoding="utf-8")
        configs.append(path)
    replicas: list[Replica] = []
    try:
        one = Replica(configs[0], database, tmp_path / "replica1.log")
        two = Replica(configs[1], database, tmp_path / "replica2.log")
        replicas += [one, two]
        one.wait_ready()
        two.wait_ready()
        for scope, (cost, tokens) in LIMITS.items():
            answer = two.client.put(
                f"/api/v1/budgets/{scope}",
                json={"max_cost": str(cost), "max_tokens": tokens},
                headers=ADMIN,
            )
            assert answer.status_code == 200, answer.text

        workload = Workload(seed, one, two)
        workload.start()
        held = [_kill_round(provider, workload, one, 1, HOLD_AFTER)]
        # the runs it was executing are interrupted; they resume on replica 2
        resumed = _resume_interrupted(provider, two)
        # replica 1 comes back (same config, a new process) and is killed again
        one = Replica(configs[0], database, tmp_path / "replica1.log")
        replicas.append(one)
        one.wait_ready()
        workload.resume(one)
        held.append(_kill_round(provider, workload, one, 2, provider.count() + HOLD_AFTER))
        workload.resume()  # on replica 2 alone, until the budgets refuse
        workload.join()
        for run_id in resumed:  # what they ended as after their resume
            workload.final[run_id] = workload.wait(run_id, run_id[0])
        _check(provider, workload, two, database, held, resumed)
    finally:
        for replica in replicas:
            replica.stop()
        provider.close()


def _check(
    provider: Provider,
    workload: Workload,
    two: Replica,
    database: str,
    held: list[int],
    resumed: list[str],
) -> None:
    assert not provider.errors, provider.errors
    bills = provider.snapshot()
    answered = [b for b in bills if not b.held]
    stuck = [b for b in bills if b.held]
    assert min(held) >= HELD, held
    assert len(stuck) == sum(held)
    assert all(b.replica == 1 for b in stuck)

    def total(of: list[Bill], key: str | None = None) -> tuple[Decimal, int]:
        chosen = [b for b in of if key is None or b.key == key]
        return sum((b.cost for b in chosen), Decimal(0)), sum(b.tokens for b in chosen)

    # the budgets held: what the provider billed fits every scope's limit
    cost, tokens = total(bills)
    assert cost <= LIMITS[TEAM][0], (cost, LIMITS[TEAM])
    assert tokens <= LIMITS[TEAM][1], (tokens, LIMITS[TEAM])
    for key in "ab":
        assert total(bills, key)[0] <= LIMITS[f"key:{key}"][0], key
    # ...and they bound: some runs were refused, at submission or by a call's reservation
    states = Counter(body["state"] for body in workload.final.values())
    assert workload.refused.total() + states["budget_exceeded"] > 0, states
    # no task's call was answered twice; a task was billed again only when its first
    # call was held by the killed replica and its run resumed (no retries)
    calls: dict[tuple[str, str], list[Bill]] = defaultdict(list)
    for bill in bills:
        calls[bill.run_id, bill.task].append(bill)
    for (run_id, _), made in calls.items():
        assert sum(not b.held for b in made) <= 1, made
        assert len(made) == 1 or (len(made) == 2 and run_id in resumed and made[0].held), made

    # every run has ended; a run with a held call was interrupted with its replica,
    # and the resumed ones ended on replica 2
    assert set(workload.final) == {r.run_id for r in workload.runs}
    late = {b.run_id for b in bills if b.late}
    assert late, "no call was answered late"
    for run_id in late:  # its client timed out: the task, and so the run, failed
        assert workload.final[run_id]["state"] == "failed", workload.final[run_id]
    for bill in stuck:
        body = workload.final[bill.run_id]
        if bill.run_id in resumed:
            ended = ("completed", "budget_exceeded", *(("failed",) * (bill.run_id in late)))
            assert body["state"] in ended, body
            assert any(t["restored"] for t in body["tasks"].values()) == (bill.task != "s1")
        else:
            assert (body["state"], body["error"]["code"]) == ("failed", "interrupted"), body
    # each run reports exactly what its answered calls cost
    by_run: dict[str, list[Bill]] = defaultdict(list)
    for bill in answered:
        by_run[bill.run_id].append(bill)
    for run_id, body in workload.final.items():
        run_cost, run_tokens = total(by_run[run_id])
        assert Decimal(body["cost"]["amount"]) == run_cost, (run_id, body)
        assert body["usage"]["total_tokens"] == run_tokens, (run_id, body)

    scopes = {TEAM: None, "key:a": "a", "key:b": "b"}
    now = open_ledger(database)
    try:
        # the killed replica's calls were charged at their hold when replica 2 found
        # their runs dead (the sweep marks a run interrupted, then charges it: wait out
        # that instant), so nothing stays reserved for them...
        _wait_until("the killed replica's calls are charged",
                    lambda: now.status(TEAM).reserved == 0)  # fmt: skip
        for scope, key in scopes.items():
            status = now.status(scope)
            assert (status.reserved, status.reserved_tokens) == (0, 0), scope
            # ...and spent is exactly what the provider billed: the calls it answered
            # (late ones included) and the held ones, each charged what it was billed
            assert (status.spent, status.spent_tokens) == total(bills, key), scope
        # the budget routes say the same, to the admin and to each key of its own scope
        team = two.client.get(f"/api/v1/budgets/{TEAM}", headers=ADMIN).json()
        assert Decimal(team["spent"]) == total(bills)[0]
        assert Decimal(team["reserved"]) == 0
        for key in "ab":
            own = two.client.get(f"/api/v1/budgets/key:{key}", headers=_headers(key)).json()
            assert Decimal(own["spent"]) == total(bills, key)[0], own
    finally:
        now.close()
    after_expiry = datetime.now(timezone.utc) + DEFAULT_LEASE_TTL + timedelta(seconds=1)
    later = open_ledger(database, clock=lambda: after_expiry)
    try:
        for scope, key in scopes.items():  # an expiry changes nothing: none is held
            status = later.status(scope)
            assert (status.reserved, status.reserved_tokens) == (0, 0), scope
            assert (status.spent, status.spent_tokens) == total(bills, key), scope
        assert later.list_scopes() == sorted(scopes)
    finally:
        later.close()

    # every billed call reserved once, every answered call settled once, the held
    # ones charged once; every plan (the orchestrator's hold before a call) was released
    with psycopg.connect(database) as conn:
        leases = conn.execute("SELECT id, state FROM ledger_leases").fetchall()
    calls = Counter(state for lease_id, state in leases if not lease_id.startswith("plan:"))
    plans = Counter(state for lease_id, state in leases if lease_id.startswith("plan:"))
    assert calls == Counter({"settled": len(answered), "charged": len(stuck)}), calls
    assert set(plans) == {"released"}, plans


@pytest.mark.parametrize("seed", [1, 2])
def test_two_replicas_never_overspend_a_shared_budget_and_spend_is_exact(
    postgres_db: str, tmp_path: Path, seed: int
) -> None:
    _run_trial(postgres_db, tmp_path, seed)
