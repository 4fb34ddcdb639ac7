"""Offline, deterministic test aids that users may use too."""

from langchain_runtime.testing.scripted import ScriptedChatModel
from langchain_runtime.testing.simulated import SimulatedChatModel

__all__ = ["ScriptedChatModel", "SimulatedChatModel"]
