"""RunResult's HTML, its timeline and the task graph: well-formed SVG that means it."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from typing import Any

from langchain_core.runnables import RunnableLambda

from langchain_runtime import Orchestrator, RunPolicy, Task
from langchain_runtime.observability._svg import STATE_COLOURS

SVG = "{http://www.w3.org/2000/svg}"


def sleeper(seconds: float, fail: bool = False) -> RunnableLambda[Any, Any]:
    async def work(inp: Any) -> str:
        await asyncio.sleep(seconds)
        if fail:
            raise ValueError("no luck")
        return f"slept {seconds}"

    return RunnableLambda(work)


def svgs(html: str) -> list[ET.Element]:
    """Every inline SVG of an HTML fragment, parsed as XML (fails if malformed)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg.*?</svg>", html, flags=re.S)]


def run_eager() -> Any:
    tasks = [
        Task("slow", sleeper(0.30)),
        Task("fast", sleeper(0.05)),
        Task("mid", sleeper(0.15)),
        Task("after", sleeper(0.05), deps=["fast"]),
        Task("broken", sleeper(0.02, fail=True), deps=["slow"]),
        Task("never", sleeper(0.01), deps=["broken"]),
    ]
    orch = Orchestrator(tasks, policy=RunPolicy(scheduling="eager", fail_fast=False))
    return orch, orch.invoke({})


def test_the_html_lists_tasks_in_commit_order_with_money_units_and_states() -> None:
    _, result = run_eager()
    html = result._repr_html_()
    assert "<script" not in html.lower() and "http://" not in html.replace(
        "http://www.w3.org/2000/svg", ""
    )
    rows = re.findall(r"<tr><td><code>([^<]+)</code>", html)
    committed = [e.task_id for e in result.events if e.type in (
        "task_completed", "task_failed", "task_skipped", "task_cancelled")]  # fmt: skip
    assert rows == committed
    assert rows != sorted(rows)  # eager: completion order, not ids
    assert rows.index("fast") < rows.index("slow")
    assert "$0.000000" in html  # money with its unit
    assert f"background:{STATE_COLOURS['failed']}'>failed" in html
    assert f"background:{STATE_COLOURS['skipped']}'>skipped" in html


def test_the_timeline_has_one_bar_per_started_task_and_proportional_widths() -> None:
    _, result = run_eager()
    [timeline] = svgs(result._repr_html_())
    bars = {
        b.get("data-task"): b for b in timeline.iter(f"{SVG}rect") if b.get("class") == "lcr-bar"
    }
    started = {t for t, tr in result.tasks.items() if tr.started_at is not None}
    assert set(bars) == started and "never" not in bars  # skipped: a row, no bar
    t0 = min(tr.started_at for tr in result.tasks.values() if tr.started_at)
    ratios = []
    for tid, bar in bars.items():
        tr = result.tasks[tid]
        assert float(bar.get("data-start")) == (tr.started_at - t0).total_seconds()
        seconds = tr.duration
        assert seconds is not None and seconds > 0
        ratios.append(float(bar.get("width")) / seconds)
        assert bar.get("fill") == STATE_COLOURS[tr.state.value]
        tip = bar.find(f"{SVG}title")
        assert tip is not None and "$" in (tip.text or "") and tr.state.value in (tip.text or "")
    # pixels per second is one constant: widths are proportional to durations
    assert max(ratios) / min(ratios) < 1.01
    # the three roots ran at once: their bars overlap
    x = {t: (float(b.get("x")), float(b.get("x")) + float(b.get("width"))) for t, b in bars.items()}
    assert max(x[t][0] for t in ("slow", "fast", "mid")) < min(
        x[t][1] for t in ("slow", "fast", "mid")
    )


def test_draw_svg_is_a_layered_graph_coloured_by_the_run() -> None:
    orch, result = run_eager()
    plain = ET.fromstring(orch.draw_svg())
    nodes = {g.get("data-task"): g for g in plain.iter(f"{SVG}g")}
    assert set(nodes) == set(orch.graph.tasks)
    edges = [p for p in plain.iter(f"{SVG}path") if p.get("marker-end")]
    assert len(edges) == sum(len(t.deps) for t in orch.graph)

    def top(tid: str) -> float:
        rect = nodes[tid].find(f"{SVG}rect")
        assert rect is not None
        return float(rect.get("y") or 0)

    for task in orch.graph:
        for dep in task.deps:
            assert top(dep) < top(task.id)  # every edge points down
    coloured = ET.fromstring(orch.draw_svg(result))
    fills = {
        g.get("data-task"): g.find(f"{SVG}rect").get("fill")  # type: ignore[union-attr]
        for g in coloured.iter(f"{SVG}g")
    }
    assert fills["broken"] == STATE_COLOURS["failed"]
    assert fills["never"] == STATE_COLOURS["skipped"]
    assert fills["slow"] == STATE_COLOURS["completed"]
    assert orch.draw_svg()._repr_svg_() == str(orch.draw_svg())


def test_a_long_chain_and_a_wide_fan_out_draw_without_recursion() -> None:
    chain = [Task("t0", lambda x: 0)] + [
        Task(f"t{i}", lambda x: 0, deps=[f"t{i - 1}"]) for i in range(1, 1500)
    ]
    root = ET.fromstring(Orchestrator(chain).draw_svg())
    assert len([g for g in root.iter(f"{SVG}g")]) == 1500
