"""Routing dependency outputs into prompts and keeping context inside a budget."""

from langchain_runtime.context.router import ContextRouter

__all__ = ["ContextRouter"]
