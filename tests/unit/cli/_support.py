"""Shared by the CLI tests: sample workflows and the shape of an invocation's result."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The repository's example workflow.
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "research.yaml"

#: A small workflow on the simulated model: a -> b, with a budget.
CHAIN = """\
name: chain
models:
  fast: {provider: simulated, response_tokens: 12}
policy:
  max_parallelism: 2
  budget: {max_cost: 0.01, expected_output_tokens: 64}
model: fast
tasks:
  - id: a
    prompt: "Say something about {topic}."
  - id: b
    deps: [a]
    prompt: "Repeat: {a}"
"""


@dataclass(frozen=True)
class Outcome:
    """What a CLI invocation did."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    def json(self) -> Any:
        return json.loads(self.stdout)


Cli = Callable[..., Outcome]
Write = Callable[[str, str], Path]
