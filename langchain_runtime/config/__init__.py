"""YAML/JSON configuration: the model registry, prices, policies and workflows.

One format, validated with pydantic; every error names the file, the line, the
field path and what was expected::

    models:
      fast: {provider: simulated, response_tokens: 64}
      smart: {provider: openai, model: gpt-4o-mini, temperature: 0}
    prices:
      my-finetune: {input: 0.3, output: 1.2}
    policies:
      default: {max_parallelism: 4, budget: {max_cost: 0.50}}
    workflows:
      research:
        tasks:
          - {id: research, prompt: "Research {topic}", model: fast}
          - {id: summary, prompt: "Summarise: {research}", model: smart, deps: [research]}

A file may instead hold one workflow at top level (``tasks:``, with optional
``models:`` and ``policy:``), as the CLI runs it.

Example:
    >>> from langchain_runtime.config import load_config
    >>> config = load_config({"tasks": [
    ...     {"id": "greet", "prompt": "Greet {name}", "model": "simulated"},
    ... ]})
    >>> config.build_workflow().invoke({"name": "Ada"}).state.value
    'completed'
"""

from langchain_runtime.config._errors import ConfigFileError, ConfigIssue
from langchain_runtime.config.loading import load_config, load_workflow
from langchain_runtime.config.runtime import RuntimeConfig
from langchain_runtime.config.schema import (
    BudgetSpec,
    ConfigSpec,
    ContextSpec,
    ModelSpec,
    PolicySpec,
    PriceSpec,
    TaskSpec,
    WorkflowFileSpec,
    WorkflowSpec,
)

__all__ = [
    "BudgetSpec",
    "ConfigFileError",
    "ConfigIssue",
    "ConfigSpec",
    "ContextSpec",
    "ModelSpec",
    "PolicySpec",
    "PriceSpec",
    "RuntimeConfig",
    "TaskSpec",
    "WorkflowFileSpec",
    "WorkflowSpec",
    "load_config",
    "load_workflow",
]
