"""``Orchestrator``: a task graph run as a LangChain Runnable."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import ensure_config
from langchain_core.runnables.graph import Graph
from pydantic import BaseModel, ConfigDict, PrivateAttr, create_model

from langchain_runtime._fields import did_you_mean, unknown_field_message
from langchain_runtime.context.router import ContextRouter
from langchain_runtime.domain import Budget, RunPolicy, RunResult, TaskResult
from langchain_runtime.errors import (
    ConfigurationError,
    InvalidInputError,
    LangChainRuntimeError,
    ResumeError,
    TaskExecutionError,
)
from langchain_runtime.orchestration._accounting import check_prices
from langchain_runtime.orchestration._errors import error_from_result
from langchain_runtime.orchestration._run import Run
from langchain_runtime.orchestration._sync import iter_sync, run_sync
from langchain_runtime.orchestration.graph import TaskGraph
from langchain_runtime.orchestration.handle import RunHandle
from langchain_runtime.orchestration.task import Task
from langchain_runtime.store import DurableRunStore, StoredRun

if TYPE_CHECKING:
    from langchain_runtime.cost.ledger import BudgetLedger
    from langchain_runtime.observability._svg import Svg

__all__ = ["Orchestrator"]

logger = logging.getLogger(__name__)


class Orchestrator(RunnableSerializable[Any, Any]):
    """Runs a graph of tasks in a deterministic order with bounded parallelism.

    The input is a dict (the run input); the output is a :class:`RunResult`, or,
    with ``output="task_id"``, that task's output alone, so the orchestrator
    composes inside chains (``prep | orchestrator | parser``).

    Each task runs as a child run named by its task id, with the caller's
    callbacks, tags and metadata.

    Args:
        tasks: The tasks, or a prebuilt :class:`TaskGraph`.
        policy: Scheduling, parallelism, timeout, budget and context policy.
        catalog: Model price catalog (for budgets and cost reporting).
        output: Return this task's output instead of the ``RunResult``.
        input_keys: The run input's keys, when known: prompt variables are then
            checked against them at construction. Without it, prompt variables no
            dependency provides are required keys of the run input.
        store: A durable run store (``SQLiteRunStore``...) for resumable runs.
        ledger: A shared :class:`~langchain_runtime.cost.ledger.BudgetLedger`: every
            model call of a run also reserves in the policy's ``scopes`` there.

    Example:
        >>> from langchain_runtime import Orchestrator, Task
        >>> from langchain_runtime.testing import SimulatedChatModel
        >>> model = SimulatedChatModel()
        >>> orch = Orchestrator([
        ...     Task("research", prompt="Research {topic}", model=model),
        ...     Task("summary", prompt="Summarise: {research}", model=model,
        ...          deps=["research"]),
        ... ])
        >>> result = orch.invoke({"topic": "owls"})
        >>> result.state.value, sorted(result.outputs)
        ('completed', ['research', 'summary'])
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    graph: TaskGraph
    policy: RunPolicy
    catalog: Any = None
    output: str | None = None
    input_keys: tuple[str, ...] | None = None
    store: Any = None
    ledger: Any = None

    _router: ContextRouter = PrivateAttr(default_factory=ContextRouter)
    _required_inputs: frozenset[str] = PrivateAttr(default=frozenset())

    def __init__(
        self,
        tasks: Iterable[Task] | TaskGraph,
        *,
        policy: RunPolicy | None = None,
        catalog: Any = None,
        output: str | None = None,
        input_keys: Sequence[str] | None = None,
        store: DurableRunStore | None = None,
        ledger: BudgetLedger | None = None,
        **kwargs: Any,
    ) -> None:
        _refuse_unknown(kwargs)
        graph = tasks if isinstance(tasks, TaskGraph) else TaskGraph(tasks)
        if output is not None and output not in graph:
            raise ConfigurationError(
                f"output={output!r} names no task in the graph (tasks: {sorted(graph.tasks)})"
            )
        super().__init__(
            graph=graph,
            policy=policy or RunPolicy(),
            catalog=catalog,
            output=output,
            input_keys=tuple(input_keys) if input_keys is not None else None,
            store=store,
            ledger=ledger,
            **kwargs,
        )
        _check_ledger(self.policy, ledger)
        self._required_inputs = frozenset(self._router.validate(graph, self.input_keys))
        check_prices(graph, self.policy.budget, self.catalog, shared=bool(self.policy.scopes))

    # ------------------------------------------------------------------ schema
    @property
    def required_inputs(self) -> frozenset[str]:
        """Run-input keys that prompts need and no dependency provides."""
        return self._required_inputs

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        fields: dict[str, Any] = {k: (Any, ...) for k in sorted(self._required_inputs)}
        return create_model(
            f"{self.get_name()}Input", __config__=ConfigDict(extra="allow"), **fields
        )

    @property
    def OutputType(self) -> Any:
        return RunResult if self.output is None else Any

    def get_graph(self, config: RunnableConfig | None = None) -> Graph:
        """The task graph as a LangChain ``Graph`` (``draw_mermaid()`` works offline)."""
        g = Graph()
        start = g.add_node(None, "__start__")
        nodes = {tid: g.add_node(self.graph[tid].runnable, tid) for tid in self.graph.order}
        end = g.add_node(None, "__end__")
        for tid in self.graph.order:
            task = self.graph[tid]
            if not task.deps:
                g.add_edge(start, nodes[tid])
            for dep in task.deps:
                g.add_edge(nodes[dep], nodes[tid])
            if not self.graph.dependents(tid):
                g.add_edge(nodes[tid], end)
        return g

    def draw_svg(self, result: RunResult | None = None) -> Svg:
        """The task graph as an SVG drawing, offline (no Mermaid, no CDN).

        Layered top to bottom, each task below its dependencies. With ``result`` (a
        finished run, or a live snapshot), boxes are coloured by the tasks' states.
        Jupyter shows the returned value as a picture; it is also a ``str`` of SVG.

        Example:
            >>> from langchain_runtime import Orchestrator, Task
            >>> orch = Orchestrator([Task("a", lambda x: 1), Task("b", lambda x: 2, deps=["a"])])
            >>> orch.draw_svg().startswith("<svg")
            True
        """
        from langchain_runtime.observability._svg import graph_svg

        states = {tid: tr.state.value for tid, tr in result.tasks.items()} if result else None
        deps = {tid: list(self.graph[tid].deps) for tid in self.graph.order}
        return graph_svg(deps, states, title=self.get_name())

    # ------------------------------------------------------------------ running
    def _make_run(
        self,
        input: Any,
        config: RunnableConfig | None,
        *,
        live: bool = False,
        run_id: str | None = None,
    ) -> Run:
        run_input = _coerce_input(input)
        missing = sorted(k for k in self._required_inputs if k not in run_input)
        if missing:
            users = {
                k: sorted(t.id for t in self.graph if k in t.prompt_variables) for k in missing
            }
            detail = "; ".join(f"{k!r} (used by {', '.join(v)})" for k, v in users.items())
            raise InvalidInputError(f"the run input is missing {detail}")
        if self.policy.admission == "worst_case":
            from langchain_runtime.cost.estimate import admit_run

            admit_run(self.graph, run_input, self.policy, self.catalog)
        cfg = ensure_config(config)
        if run_id is None and cfg.get("run_id") is not None:
            run_id = str(cfg.get("run_id"))
        return self._new_run(self.graph, self.policy, run_input, cfg, run_id=run_id, live=live)

    def _new_run(
        self,
        graph: TaskGraph,
        policy: RunPolicy,
        run_input: dict[str, Any],
        cfg: RunnableConfig,
        *,
        run_id: str | None,
        live: bool,
        restored: StoredRun | None = None,
        attempt: int = 0,
    ) -> Run:
        return Run(
            graph,
            policy,
            run_input,
            cfg,
            name=self.get_name(),
            router=self._router,
            required_inputs=self._required_inputs,
            run_id=run_id,
            live=live,
            catalog=self.catalog,
            store=self.store,
            ledger=self.ledger,
            restored=restored,
            attempt=attempt,
        )

    def _make_resume(
        self,
        run_id: str,
        budget: Budget | None,
        tasks: Sequence[Task],
        config: RunnableConfig | None,
        *,
        live: bool = False,
    ) -> Run:
        """A run that continues stored run ``run_id`` (see :meth:`resume`)."""
        from langchain_runtime.orchestration._durable import check_resumable
        from langchain_runtime.store._codec import decode

        if self.store is None:
            raise ConfigurationError(
                "resume needs a run store: Orchestrator(..., store=SQLiteRunStore(path))"
            )
        graph = self.graph.copy()
        for task in tasks:  # tasks that were enqueued into the live run
            self._router.validate_task(task, graph)
            graph.add(task)
        claimed = self._claim(run_id)
        try:
            stored = check_resumable(
                self.store.load_run(run_id), run_id, graph, self.store, claimed=claimed
            )
            # the claim counted this attempt in ``resumes``; a store that cannot claim
            # counts it when the run begins
            attempt = stored.resumes if claimed else stored.resumes + 1
            self._charge_dead_calls(run_id, attempt)
            policy = RunPolicy.model_validate(stored.header.policy)
            if budget is not None:  # a top-up after budget_exceeded, or a new limit
                policy = policy.model_copy(update={"budget": budget})
            check_prices(graph, policy.budget, self.catalog, shared=bool(policy.scopes))
            run_input = decode(stored.header.input)
            cfg = ensure_config(config)
            return self._new_run(
                graph, policy, run_input, cfg, run_id=run_id, live=live, restored=stored,
                attempt=attempt,
            )  # fmt: skip
        except BaseException:
            if claimed:  # the run goes back as it was: another resume may take it
                self.store.release(run_id)
            raise

    def _charge_dead_calls(self, run_id: str, attempt: int) -> None:
        """Charge, at their hold, the ledger leases the run's dead attempts left unsettled.

        The run is ours now (claimed, or not live) as ``attempt``: whatever the
        attempts before it had in flight was sent by a process that died, and may have
        been billed. Idempotent per lease, so a run resumed many times is charged once.
        A ledger that cannot answer is logged: those leases then expire and free their
        hold, as the ledger alone would have it.
        """
        from langchain_runtime.orchestration._accounting import dead_holders

        if self.ledger is None:
            return
        try:
            charged = sum(
                self.ledger.charge_held(holder)
                for holder in dead_holders(run_id, resumes=attempt, live=True)
            )
        except Exception as exc:
            logger.warning(
                "run %s: the calls its stopped process had in flight could not be charged "
                "at their hold (%s); their leases will expire instead",
                run_id,
                exc,
            )
            return
        if charged:
            logger.warning(
                "run %s: %d call(s) in flight when its process stopped charged at their hold",
                run_id,
                charged,
            )

    def _claim(self, run_id: str) -> bool:
        """Hold stored run ``run_id`` for this process before reading it, where the store
        can: of two resumes (threads, processes, replicas) only one gets the run."""
        from langchain_runtime.store import local_owner

        claim = getattr(self.store, "claim", None)
        if not callable(claim) or self.store.load_run(run_id) is None:
            return False  # no claims here, or no such run (check_resumable says so)
        if not claim(run_id, local_owner()):
            raise ResumeError(
                f"run {run_id!r} is still live; abort it or wait for it to end before resuming"
            )
        return True

    async def aresume(
        self,
        run_id: str,
        *,
        budget: Budget | None = None,
        tasks: Sequence[Task] = (),
        config: RunnableConfig | None = None,
    ) -> RunResult:
        """Continue a stored run: completed tasks come back, every other task runs.

        Completed tasks are restored from the store with ``restored=True`` and never
        run again; their usage and cost stay in the run's totals and count against
        its budget. Failed, skipped, cancelled and never-started tasks run as fresh
        attempts. The run keeps its id, its input and its stored policy.

        With a ledger, the calls the stopped process had in flight (their leases are
        the run's, still unsettled) are first charged at their hold in the shared
        scopes (:meth:`~langchain_runtime.cost.ledger.BudgetLedger.charge_held`):
        the provider may have billed them, so their budget is not handed out again.

        Args:
            run_id: The stored run.
            budget: Replaces the stored budget (a top-up after ``budget_exceeded``).
            tasks: Tasks that were enqueued into the live run, to run them again.
            config: The caller's config (callbacks, tags, metadata).

        Raises:
            ResumeError: No such run, the run is still live, or this graph differs
                from the stored one (task ids, deps, prompts, model ids, inputs).
        """
        run = self._make_resume(run_id, budget, tasks, config)
        return await run.execute()

    def resume(
        self,
        run_id: str,
        *,
        budget: Budget | None = None,
        tasks: Sequence[Task] = (),
        config: RunnableConfig | None = None,
    ) -> RunResult:
        """Continue a stored run from sync code; see :meth:`aresume`.

        Example:
            >>> import tempfile, pathlib
            >>> from langchain_runtime import Orchestrator, SQLiteRunStore, Task
            >>> store = SQLiteRunStore(pathlib.Path(tempfile.mkdtemp()) / "runs.db")
            >>> orch = Orchestrator([Task("a", lambda x: 1)], store=store)
            >>> first = orch.invoke({})
            >>> again = orch.resume(first.run_id)
            >>> again.tasks["a"].restored, again.state.value
            (True, 'completed')
        """
        return run_sync(lambda: self.aresume(run_id, budget=budget, tasks=tasks, config=config))

    def start_resume(
        self,
        run_id: str,
        *,
        budget: Budget | None = None,
        tasks: Sequence[Task] = (),
        config: RunnableConfig | None = None,
    ) -> RunHandle:
        """:meth:`resume` in the background: a :class:`RunHandle` for the resumed run."""
        return RunHandle.launch(self._make_resume(run_id, budget, tasks, config, live=True))

    def _select(self, result: RunResult, run: Run) -> Any:
        if self.output is None:
            return result
        if self.output in result.outputs:
            return result.outputs[self.output]
        # the output task did not complete: raise the root cause, not the symptom
        root = result.error.task_id if result.error is not None else None
        cause = run.exceptions.get(self.output) or (run.exceptions.get(root) if root else None)
        if isinstance(cause, LangChainRuntimeError) and not isinstance(cause, TaskExecutionError):
            raise cause  # budget, context size, input errors keep their own fields
        err = error_from_result(result, self.output)
        if cause is not None:
            raise err from cause
        raise err

    async def ainvoke(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        progress: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Run the graph; return the ``RunResult`` (or the ``output`` task's output).

        Args:
            input: The run input (a dict; anything else is available as ``input``).
            config: The caller's config: callbacks, tags, metadata, ``max_concurrency``.
            progress: Show a progress bar (terminal or Jupyter) while it runs.
        """
        run = self._make_run(input, config)
        bar = None
        if progress:
            from langchain_runtime.observability.progress import ProgressBar

            bar = ProgressBar(len(self.graph), desc=self.get_name())
            run.listeners.append(bar)
        try:
            result = await run.execute()
        finally:
            if bar is not None:
                bar.close()
        return self._select(result, run)

    def invoke(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        progress: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Run the graph from sync code (also where an event loop is running, as in
        Jupyter); see :meth:`ainvoke`."""
        return run_sync(lambda: self.ainvoke(input, config, progress=progress, **kwargs))

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Any]:
        """Yield each task's :class:`TaskResult` as it finishes, then the ``RunResult``.

        With ``output="task_id"`` it yields that task's output alone, once, so a
        streamed chain receives what ``invoke`` would have returned.
        """
        import asyncio

        run = self._make_run(input, config)
        if self.output is not None:
            result = await run.execute()
            yield self._select(result, run)
            return
        queue: asyncio.Queue[TaskResult] = asyncio.Queue()
        run.listeners.append(queue.put_nowait)
        # the run's callback run ends after the last chunk, as for any streamed Runnable
        main = asyncio.ensure_future(run.execute(defer_end=True))
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, main}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                while not queue.empty():
                    yield queue.get_nowait()
                yield main.result()
                return
        finally:
            if not main.done():
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
            await run.end_callbacks()

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Any]:
        """Yield each task's :class:`TaskResult` as it finishes, then the ``RunResult``.

        The blocking twin of :meth:`astream` (the same run, driven from this
        thread). With ``output="task_id"`` it yields that task's output alone, once.

        Example:
            >>> orch = Orchestrator([Task("a", lambda inp: "A"), Task("b", lambda inp: "B")])
            >>> [type(item).__name__ for item in orch.stream({})]
            ['TaskResult', 'TaskResult', 'RunResult']
        """
        yield from iter_sync(lambda: self.astream(input, config, **kwargs))

    def start(
        self, input: Any = None, config: RunnableConfig | None = None, *, run_id: str | None = None
    ) -> RunHandle:
        """Start a run in the background and return a handle to watch and steer it.

        ``run_id`` names the run (it is the id in a run store); by default it is the
        config's ``run_id`` or a new UUID.
        """
        run = self._make_run(input, config, live=True, run_id=run_id)
        return RunHandle.launch(run)


def _check_ledger(policy: RunPolicy, ledger: Any) -> None:
    """Scopes need a ledger to reserve in; a ledger must be one."""
    if ledger is not None:
        from langchain_runtime.cost.ledger import BudgetLedger

        if not isinstance(ledger, BudgetLedger):
            raise ConfigurationError(
                "Orchestrator: ledger must be a BudgetLedger (InMemoryLedger, SQLiteLedger, "
                f"PostgresLedger), got {type(ledger).__name__}"
            )
    elif policy.scopes:
        raise ConfigurationError(
            f"Orchestrator: the policy's scopes {list(policy.scopes)} need a shared ledger "
            "to reserve in: Orchestrator(..., ledger=SQLiteLedger('budgets.db'))"
        )


def _refuse_unknown(kwargs: Mapping[str, Any]) -> None:
    """A misspelt keyword (``polcy=``) must not run the graph without its policy."""
    known = {"tasks", *Orchestrator.model_fields} - {"graph"}
    for key in sorted(kwargs):
        if key not in known:
            policy_field = did_you_mean(key, RunPolicy.model_fields)
            if policy_field is not None and did_you_mean(key, known) is None:
                # A run setting passed where the policy belongs: max_paralelism=2.
                raise ConfigurationError(
                    f"Orchestrator: {key}: unknown field; did you mean "
                    f"policy=RunPolicy({policy_field}=...)? (Orchestrator takes: "
                    f"{', '.join(sorted(known))}; run settings go in RunPolicy)"
                )
            raise ConfigurationError(f"Orchestrator: {key}: {unknown_field_message(key, known)}")


def _coerce_input(input: Any) -> dict[str, Any]:
    if input is None:
        return {}
    if isinstance(input, Mapping):
        return dict(input)
    if isinstance(input, BaseModel):
        return input.model_dump()
    return {"input": input}
