"""Routing dependency outputs into prompts and keeping context inside a budget."""

from langchain_runtime.context.builder import ContextBuilder, current_memory
from langchain_runtime.context.compaction import (
    CompactionResult,
    ContextCompactor,
    VariableCompaction,
)
from langchain_runtime.context.memory import MemoryManager
from langchain_runtime.context.router import ContextRouter

__all__ = [
    "CompactionResult",
    "ContextBuilder",
    "ContextCompactor",
    "ContextRouter",
    "MemoryManager",
    "VariableCompaction",
    "current_memory",
]
