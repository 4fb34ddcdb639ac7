"""Overhead of budget enforcement per model call: with vs without the handler.

Run it from the repository root::

    .venv/bin/python tests/benchmarks/bench_budget_handler.py [--repeat N] [--calls N]
        [--latency SECONDS]

What is measured: wall time per call of ``SimulatedChatModel`` (offline, 20-token
answers, usage reported like a provider; zero latency unless ``--latency``) called
with ``invoke`` and with ``ainvoke``, for prompts of ~100 and ~2,000 tokens, in four
modes:

* **bare**: no callbacks (the baseline);
* **noop**: one no-op ``BaseCallbackHandler`` in ``config["callbacks"]`` -- what
  LangChain itself charges for having any handler at all;
* **handler**: ``BudgetCallbackHandler`` with a cost budget in
  ``config["callbacks"]`` (counts the prompt, reserves, settles, tracks);
* **with_budget**: the model wrapped by ``with_budget(model, max_cost=...)``.

Prompts are either **repeated** (the same messages on every call, as an agent resends
its history; token counts of texts already seen come from a cache) or **unique** (new
text on every call: the full tokenisation cost is paid each time -- the worst case).
Caveat for the unique rows: ``SimulatedChatModel`` counts its own prompt with the same
``TokenEstimator`` (and cache), so with the handler the model's count is a cache hit
and those rows understate the handler's cost by about one tokenisation of the prompt;
that cost is printed separately ("counting a unique prompt"), as is the handler's own
work per call without LangChain around it ("handler alone").

Method: each measurement times ``--calls`` consecutive calls; modes are interleaved
within a repetition (order rotated per repetition) so they share machine noise;
``gc.collect()`` before each; ``--repeat`` repetitions. Times are medians; ratios are
medians of per-repetition ratios to ``bare``. Target: handler <= 1.25x bare. The exit
code is always 0: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

# The estimator must never wait for a download while we time it.
os.environ.setdefault("LANGCHAIN_RUNTIME_TIKTOKEN_DOWNLOAD", "0")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from langchain_runtime.cost import BudgetCallbackHandler, TokenEstimator, with_budget
from langchain_runtime.domain import Budget
from langchain_runtime.testing import SimulatedChatModel

MODES = ("bare", "noop", "handler", "with_budget")
WORDS = [
    "the",
    "model",
    "reads",
    "every",
    "document",
    "in",
    "the",
    "archive",
    "and",
    "writes",
    "a",
    "short",
    "summary",
    "of",
    "the",
    "findings",
    "for",
    "the",
    "team",
    "with",
    "sources",
    "dates",
    "figures",
    "and",
    "open",
    "questions",
    "about",
    "cost",
]
TARGET = 1.25
USAGE: Any = {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}


class NoOp(BaseCallbackHandler):
    """A handler that does nothing (LangChain's own per-handler cost)."""


def prompt(tokens: int, rng: random.Random) -> list[BaseMessage]:
    """A system + user prompt of about ``tokens`` tokens (these words are one token each)."""
    body = " ".join(rng.choice(WORDS) for _ in range(max(tokens - 20, 1)))
    return [SystemMessage("You are a careful analyst."), HumanMessage(body)]


def make_model(latency: float) -> BaseChatModel:
    return SimulatedChatModel(response_tokens=20, latency=latency)


Runner = Callable[[list[BaseMessage]], Any]


def runners(model: BaseChatModel) -> dict[str, tuple[Runner, Runner]]:
    """(sync, async) callables per mode; budgets large enough never to refuse."""
    big = Decimal(10**6)
    noop = NoOp()
    handler = BudgetCallbackHandler(Budget(max_cost=big))
    wrapped = with_budget(model, max_cost=big)
    cfg_noop: Any = {"callbacks": [noop]}
    cfg_handler: Any = {"callbacks": [handler]}
    return {
        "bare": (lambda m: model.invoke(m), lambda m: model.ainvoke(m)),
        "noop": (lambda m: model.invoke(m, cfg_noop), lambda m: model.ainvoke(m, cfg_noop)),
        "handler": (
            lambda m: model.invoke(m, cfg_handler),
            lambda m: model.ainvoke(m, cfg_handler),
        ),
        "with_budget": (lambda m: wrapped.invoke(m), lambda m: wrapped.ainvoke(m)),
    }


def time_sync(run: Runner, prompts: list[list[BaseMessage]]) -> float:
    gc.collect()
    start = time.perf_counter()
    for p in prompts:
        run(p)
    return (time.perf_counter() - start) / len(prompts)


def time_async(run: Runner, prompts: list[list[BaseMessage]]) -> float:
    async def go() -> float:
        gc.collect()
        start = time.perf_counter()
        for p in prompts:
            await run(p)
        return (time.perf_counter() - start) / len(prompts)

    return asyncio.run(go())


def measure(
    size: int,
    unique: bool,
    path: str,
    calls: int,
    repeat: int,
    rng: random.Random,
    latency: float,
) -> dict[str, tuple[float, float]]:
    """Median seconds per call and median ratio to bare, per mode."""
    model = make_model(latency)
    table = runners(model)
    timer = time_sync if path == "invoke" else time_async
    fixed = [prompt(size, rng)] * calls
    idx = 0 if path == "invoke" else 1
    for mode in MODES:  # warm-up: encodings loaded, caches filled, code paths hot
        timer(table[mode][idx], fixed[:5])
    times: dict[str, list[float]] = {m: [] for m in MODES}
    ratios: dict[str, list[float]] = {m: [] for m in MODES}
    for rep in range(repeat):
        order = MODES[rep % len(MODES) :] + MODES[: rep % len(MODES)]
        this: dict[str, float] = {}
        for mode in order:
            prompts = [prompt(size, rng) for _ in range(calls)] if unique else fixed
            this[mode] = timer(table[mode][idx], prompts)
        for mode in MODES:
            times[mode].append(this[mode])
            ratios[mode].append(this[mode] / this["bare"])
    return {m: (statistics.median(times[m]), statistics.median(ratios[m])) for m in MODES}


def handler_alone(calls: int = 5000) -> float:
    """Microseconds per call of the handler's own work, events fed directly."""
    handler = BudgetCallbackHandler(Budget(max_cost=Decimal(10**6)))
    messages = prompt(100, random.Random(2))
    result = LLMResult(generations=[[ChatGeneration(message=AIMessage("x", usage_metadata=USAGE))]])
    params = {"model_name": "simulated"}
    ids = [uuid.uuid4() for _ in range(calls + 100)]
    for rid in ids[:100]:
        handler.on_chat_model_start({}, [messages], run_id=rid, invocation_params=params)
        handler.on_llm_end(result, run_id=rid)
    gc.collect()
    start = time.perf_counter()
    for rid in ids[100:]:
        handler.on_chat_model_start({}, [messages], run_id=rid, invocation_params=params)
        handler.on_llm_end(result, run_id=rid)
    return (time.perf_counter() - start) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.0, help="simulated seconds per call")
    args = parser.parse_args(argv)
    rng = random.Random(0)
    est = TokenEstimator()
    sizes = (100, 2000)
    real = {s: est.count_messages(prompt(s, random.Random(1)), "simulated") for s in sizes}
    print(f"token counting: {est.method('simulated')}; python {sys.version.split()[0]}")
    print(
        f"{args.calls} calls x {args.repeat} repetitions per cell; model latency "
        f"{args.latency * 1000:g} ms; times are per call\n"
    )
    for size in sizes:
        fresh = [prompt(size, rng) for _ in range(args.calls)]
        start = time.perf_counter()
        for p in fresh:
            est.count_messages(p, "simulated")
        per = (time.perf_counter() - start) / len(fresh) * 1e6
        print(f"counting a unique prompt of {real[size]} tokens: {per:.0f}us")
    print(f"handler alone (start + end events, repeated prompt): {handler_alone():.0f}us\n")
    head = (
        f"{'prompt':>14} {'path':>8} | {'bare':>9} {'noop':>9} {'handler':>9} "
        f"{'with_budget':>11} | {'noop x':>7} {'handler x':>9} {'wrapped x':>9}"
    )
    print(head)
    print("-" * len(head))
    missed: list[str] = []
    for size in sizes:
        for unique in (False, True):
            for path in ("invoke", "ainvoke"):
                r = measure(size, unique, path, args.calls, args.repeat, rng, args.latency)
                label = f"{real[size]} tok {'uniq' if unique else 'rep'}"
                us = {m: r[m][0] * 1e6 for m in MODES}
                print(
                    f"{label:>14} {path:>8} | {us['bare']:>7.0f}us {us['noop']:>7.0f}us "
                    f"{us['handler']:>7.0f}us {us['with_budget']:>9.0f}us | "
                    f"{r['noop'][1]:>6.2f}x {r['handler'][1]:>8.2f}x "
                    f"{r['with_budget'][1]:>8.2f}x"
                )
                if r["handler"][1] > TARGET:
                    missed.append(f"{label} {path}: handler {r['handler'][1]:.2f}x")
    print()
    if missed:
        print(f"SUMMARY: handler over {TARGET}x in {len(missed)} cell(s): " + "; ".join(missed))
    else:
        print(f"SUMMARY: handler within {TARGET}x of bare in every cell.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
