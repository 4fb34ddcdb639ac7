# %% [markdown]
# # Routing and compaction
#
# Upstream tasks write far more than the downstream model should read. Routing
# hands each task exactly the variables it asks for; a context policy keeps them
# inside a token budget before any money is spent. Runs offline on the simulated
# model; cells are marked with `# %%` so Jupyter (jupytext) and VS Code open it as
# a notebook.

# %%
from decimal import Decimal

from langchain_runtime import Budget, ContextPolicy, Orchestrator, RunPolicy, Task
from langchain_runtime.testing import SimulatedChatModel

writer = SimulatedChatModel(response_tokens=1200, model_name="gpt-4o-mini")
editor = SimulatedChatModel(response_tokens=60, model_name="gpt-4o-mini")

tasks = [
    # a dict output: fields can be selected by dependents
    Task("brief", lambda inp: {"topic": inp["topic"], "audience": "students"}),
    Task(
        "history",
        prompt="Write the history of {topic}.",
        model=writer,
        deps=["brief"],
        inputs={"topic": "brief.topic"},
    ),
    Task(
        "biology",
        prompt="Write about the biology of {topic}.",
        model=writer,
        deps=["brief"],
        inputs={"topic": "brief.topic"},
        memory_key="biology",
    ),
    Task(
        "article",
        prompt="For {audience}, merge into one article:\n{history}\n{notes}",
        model=editor,
        deps=["history", "biology"],
        inputs={"audience": "brief.audience", "notes": "$memory.biology"},
        # this task alone: summarise what is routed in down to 500 tokens
        context=ContextPolicy(max_tokens=500, strategy="summarize"),
    ),
]
policy = RunPolicy(budget=Budget(max_cost=Decimal("0.01"), expected_output_tokens=1200))
orchestrator = Orchestrator(tasks, policy=policy)

# %%
result = orchestrator.invoke({"topic": "barn owls"})
result  # renders as a table in Jupyter

# %%
compaction = result.tasks["article"].compaction
print("strategy:", compaction["strategy"])
print("tokens routed in:", compaction["tokens_before"], "-> sent:", compaction["tokens_after"])
print("summarizer calls:", compaction["summarizer_calls"])
print("run cost:", result.cost, "of budget", policy.budget.max_cost)
for model, usage in result.models.items():
    print(model, usage.calls, "calls", usage.usage.total_tokens, "tokens", usage.cost)
