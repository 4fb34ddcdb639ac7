"""Task graphs and the orchestrator that runs them."""

from langchain_runtime.orchestration.graph import TaskGraph
from langchain_runtime.orchestration.handle import RunHandle
from langchain_runtime.orchestration.orchestrator import Orchestrator
from langchain_runtime.orchestration.task import Task

__all__ = ["Orchestrator", "RunHandle", "Task", "TaskGraph"]
