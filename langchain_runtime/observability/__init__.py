"""Watching runs: progress display."""

from langchain_runtime.observability.progress import ProgressBar

__all__ = ["ProgressBar"]
