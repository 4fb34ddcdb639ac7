"""Example workflow on the offline simulated model.

research -> outline -> three drafts in parallel (fan-out) -> review (fan-in).

Run with ``make demo`` (or ``.venv/bin/python examples/demo.py``): no network,
no API key.
"""

from __future__ import annotations

import sys

from langchain_runtime import Orchestrator, RunPolicy, Task
from langchain_runtime.testing import SimulatedChatModel


def build() -> Orchestrator:
    model = SimulatedChatModel(response_tokens=40, latency=0.05)
    sections = ("intro", "body", "conclusion")
    tasks = [
        Task("research", prompt="Collect key facts about {topic}.", model=model),
        Task(
            "outline",
            prompt="Write an outline for an article on {topic}.\nFacts:\n{research}",
            model=model,
            deps=["research"],
        ),
        *(
            Task(
                f"draft_{s}",
                prompt=f"Draft the {s} section.\nOutline:\n{{outline}}",
                model=model,
                deps=["outline"],
            )
            for s in sections
        ),
        Task(
            "review",
            prompt="Review the article.\n{draft_intro}\n{draft_body}\n{draft_conclusion}",
            model=model,
            deps=[f"draft_{s}" for s in sections],
        ),
    ]
    return Orchestrator(tasks, policy=RunPolicy(max_parallelism=3))


def main() -> int:
    orchestrator = build()
    topic = sys.argv[1] if len(sys.argv) > 1 else "barn owls"
    result = orchestrator.invoke({"topic": topic})
    print(f"run {result.run_id}: {result.state.value}")
    for task_id, tr in result.tasks.items():
        text = tr.output.text if tr.output is not None else ""
        dur = f"{tr.duration:.2f}s" if tr.duration is not None else "-"
        print(
            f"\n[{task_id}] {tr.state.value} in {dur}, batch {tr.batch}, "
            f"{tr.usage.total_tokens} tokens, {tr.cost}"
        )
        print(f"  {text[:160]}{'...' if len(text) > 160 else ''}")
    print(f"\ntotal: {result.usage.total_tokens} tokens, {result.cost}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
