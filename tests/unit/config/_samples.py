"""Sample documents shared by the configuration tests."""

from __future__ import annotations

from pathlib import Path

#: The repository's example workflow.
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "research.yaml"

MULTI = """\
models:
  fast:
    provider: simulated
    response_tokens: 12
  slow:
    provider: simulated
    model: simulated
    latency: 0.01
    max_tokens: 30
prices:
  my-finetune: {input: 0.3, output: 1.2, cached_input: 0.1, role: fast}
  simulated: {output: 0.5}
policies:
  default:
    max_parallelism: 2
  capped:
    max_parallelism: 3
    fail_fast: false
    budget: {max_cost: 0.05, max_tokens: 5000, expected_output_tokens: 64}
    context: {max_tokens: 2000, strategy: truncate, keep: tail}
workflows:
  research:
    description: research then summarise
    policy: capped
    input_keys: [topic]
    tasks:
      - id: research
        prompt: "Research {topic}"
        model: fast
      - id: summary
        prompt: "Summarise: {research}"
        model: slow
        deps: [research]
        timeout: 5
        max_retries: 1
        metadata: {stage: summary}
        memory_key: summary
  inline:
    model: fast
    output: b
    policy: {max_parallelism: 1, scheduling: eager}
    tasks:
      - {id: a, prompt: "Say {word}"}
      - {id: b, prompt: "Repeat {x}", deps: a, inputs: {x: a}}
"""
