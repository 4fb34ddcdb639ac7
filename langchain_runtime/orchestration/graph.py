"""``TaskGraph``: the validated DAG of tasks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from langchain_runtime.errors import GraphValidationError
from langchain_runtime.orchestration.task import Task

__all__ = ["TaskGraph"]


class TaskGraph:
    """A validated directed acyclic graph of :class:`Task` objects.

    Duplicate ids, unknown dependencies, self-dependencies and cycles are refused
    at construction with a :class:`GraphValidationError` naming the ids; a cycle
    error gives the path in execution order (``a -> b -> c -> a``: each task must
    run before the next).

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> g = TaskGraph([
        ...     Task("a", RunnableLambda(lambda x: 1)),
        ...     Task("b", RunnableLambda(lambda x: 2), deps=["a"]),
        ... ])
        >>> g.order
        ('a', 'b')
    """

    __slots__ = ("_dependents", "_order", "_tasks")

    def __init__(self, tasks: Iterable[Task]):
        by_id: dict[str, Task] = {}
        for task in tasks:
            if not isinstance(task, Task):
                raise GraphValidationError(
                    f"TaskGraph takes Task objects, got {type(task).__name__}",
                    code="invalid_input",
                )
            if task.id in by_id:
                raise GraphValidationError(
                    f"duplicate task id {task.id!r}", task_ids=(task.id,), code="dag_invalid"
                )
            by_id[task.id] = task
        for task in by_id.values():
            _check_deps(task, by_id)
        self._tasks = by_id
        self._dependents: dict[str, list[str]] = {tid: [] for tid in by_id}
        for task in by_id.values():
            for dep in task.deps:
                self._dependents[dep].append(task.id)
        self._order = _topological_order(by_id, self._dependents)

    # -- read access ---------------------------------------------------------
    @property
    def tasks(self) -> Mapping[str, Task]:
        """Tasks by id, in insertion order."""
        return self._tasks

    @property
    def order(self) -> tuple[str, ...]:
        """A deterministic topological order (ties broken by task id)."""
        return self._order

    def dependents(self, task_id: str) -> tuple[str, ...]:
        """Ids of the tasks that depend directly on ``task_id``."""
        return tuple(self._dependents[task_id])

    def __getitem__(self, task_id: str) -> Task:
        return self._tasks[task_id]

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def __repr__(self) -> str:
        edges = sum(len(t.deps) for t in self._tasks.values())
        return f"TaskGraph({len(self._tasks)} tasks, {edges} edges)"

    # -- growth --------------------------------------------------------------
    def copy(self) -> TaskGraph:
        """A copy that can grow (``add``) without touching this graph."""
        new = TaskGraph.__new__(TaskGraph)
        new._tasks = dict(self._tasks)
        new._dependents = {k: list(v) for k, v in self._dependents.items()}
        new._order = self._order
        return new

    def add(self, task: Task) -> None:
        """Add ``task`` to the graph, validated like a task given at construction.

        A new task can only depend on tasks already in the graph, so it can never
        close a cycle; a self-dependency or an unknown dependency is refused.
        """
        if not isinstance(task, Task):
            raise GraphValidationError(
                f"expected a Task, got {type(task).__name__}", code="invalid_input"
            )
        if task.id in self._tasks:
            raise GraphValidationError(
                f"duplicate task id {task.id!r}: the run already has a task with this id",
                task_ids=(task.id,),
                code="dag_invalid",
            )
        _check_deps(task, self._tasks)
        self._tasks[task.id] = task
        self._dependents[task.id] = []
        for dep in task.deps:
            self._dependents[dep].append(task.id)
        self._order = (*self._order, task.id)


def _check_deps(task: Task, known: Mapping[str, Task]) -> None:
    for dep in task.deps:
        if dep == task.id:
            raise GraphValidationError(
                f"task {task.id!r} depends on itself", task_ids=(task.id,), code="dag_cycle"
            )
        if dep not in known:
            raise GraphValidationError(
                f"task {task.id!r} depends on unknown task {dep!r}",
                task_ids=(task.id, dep),
                code="dep_not_found",
            )


def _topological_order(
    tasks: Mapping[str, Task], dependents: Mapping[str, list[str]]
) -> tuple[str, ...]:
    """Kahn's algorithm, layer by layer with ids sorted, O(V + E log V)."""
    indegree = {tid: len(t.deps) for tid, t in tasks.items()}
    layer = sorted(tid for tid, d in indegree.items() if d == 0)
    order: list[str] = []
    while layer:
        order.extend(layer)
        nxt: list[str] = []
        for tid in layer:
            for child in dependents[tid]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    nxt.append(child)
        nxt.sort()
        layer = nxt
    if len(order) != len(tasks):
        path = _find_cycle(tasks, {tid for tid, d in indegree.items() if d > 0})
        raise GraphValidationError(
            "cycle in task graph: "
            + " -> ".join(path)
            + " (each task would have to run before the next)",
            task_ids=tuple(path),
            code="dag_cycle",
        )
    return tuple(order)


def _find_cycle(tasks: Mapping[str, Task], stuck: set[str]) -> list[str]:
    """A cycle among ``stuck`` tasks, every one of which has a stuck dependency."""
    start = min(stuck)
    seen: dict[str, int] = {}
    walk: list[str] = []
    node = start
    while node not in seen:
        seen[node] = len(walk)
        walk.append(node)
        node = min(d for d in tasks[node].deps if d in stuck)
    # walk follows "depends on" edges; reverse it to read in execution order.
    cycle = walk[seen[node] :]
    cycle.reverse()
    first = cycle.index(min(cycle))  # canonical: start at the smallest id
    cycle = cycle[first:] + cycle[:first]
    return [*cycle, cycle[0]]
