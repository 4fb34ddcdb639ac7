"""``langchain-runtime validate``: checks without running; errors name file, field, task."""

from __future__ import annotations

import pytest

from tests.unit.cli._support import CHAIN, EXAMPLE, Cli, Write


def test_valid_file_passes_with_a_summary(cli: Cli) -> None:
    out = cli("validate", EXAMPLE)
    assert out.exit_code == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith(f"✓ {EXAMPLE}: workflow 'research' is valid: 6 tasks")
    assert "models researcher, reviewer, writer" in line
    assert "budget $0.01, 20,000 tokens" in line and "timeout 120s" in line


def test_no_model_is_built(cli: Cli, write: Write) -> None:
    # An OpenAI model without a key or network: validate must not build it.
    wf = write(
        "openai.yaml",
        """\
models:
  smart: {provider: openai, model: gpt-4o-mini}
tasks:
  - {id: a, prompt: "Hi {name}", model: smart}
""",
    )
    out = cli("validate", wf, env={"OPENAI_API_KEY": ""})
    assert out.exit_code == 0, out.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tasks:\n  - {id: a, prompt: 'x', model: simulated\n",
            ":3: invalid YAML at column 1",
        ),
        (
            CHAIN.replace("deps: [a]", "deps: [nope]"),
            ":12: tasks[1].deps: task 'b' depends on unknown task(s) 'nope'",
        ),
        (
            CHAIN.replace('prompt: "Repeat: {a}"', 'prompt: "Repeat: {a}"\n    modle: x'),
            ":14: tasks[1].modle: unknown field; did you mean 'model'?",
        ),
        (
            CHAIN.replace("deps: [a]", "deps: [a]\n    model: fsat"),
            "tasks[1].model: task 'b' uses unknown model id 'fsat' (did you mean 'fast'?)",
        ),
        (
            CHAIN.replace(
                'prompt: "Say something about {topic}."', 'prompt: "x {b}"\n    deps: [b]'
            ),
            "cycle",
        ),
        ("[]\n", "expected a mapping"),
    ],
    ids=["yaml-syntax", "unknown-dep", "unknown-field", "unknown-model", "cycle", "not-a-map"],
)
def test_errors_name_the_file_field_and_task(
    cli: Cli, write: Write, text: str, expected: str
) -> None:
    path = write("wf.yaml", text)
    out = cli("validate", path)
    assert out.exit_code == 2
    assert out.stdout == ""
    assert out.stderr.startswith(f"error: {path}")
    assert expected in out.stderr
    assert "Traceback" not in out.stderr


def test_cycle_names_the_path(cli: Cli, write: Write) -> None:
    text = CHAIN.replace('prompt: "Say something about {topic}."', 'prompt: "x {b}"\n    deps: [b]')
    out = cli("validate", write("cycle.yaml", text))
    assert out.exit_code == 2
    assert "a -> b -> a" in out.stderr or "b -> a -> b" in out.stderr
    assert "tasks[" in out.stderr  # the task's place in the file


def test_several_problems_are_one_line_each(cli: Cli, write: Write) -> None:
    text = CHAIN.replace("max_parallelism: 2", "max_parallelism: 0\n  fail_fats: true")
    path = write("two.yaml", text)
    out = cli("validate", path)
    assert out.exit_code == 2
    lines = out.stderr.splitlines()
    assert lines[0] == f"error: {path}: 2 configuration errors:"
    assert lines[1].strip().startswith(f"{path}:5: policy.max_parallelism: expected greater")
    assert lines[2].strip().startswith(f"{path}:6: policy.fail_fats: unknown field")


def test_missing_file(cli: Cli, tmp_path: object) -> None:
    out = cli("validate", "does-not-exist.yaml")
    assert out.exit_code == 2
    assert out.stderr == (
        "error: does-not-exist.yaml: cannot read the file: No such file or directory\n"
    )


MULTI = """\
models:
  fast: {provider: simulated}
workflows:
  good:
    model: fast
    tasks: [{id: a, prompt: "Hi"}]
  bad:
    model: fast
    input_keys: [x]
    tasks: [{id: b, prompt: "Hi {y}"}]
"""


def test_every_workflow_is_checked_unless_one_is_named(cli: Cli, write: Write) -> None:
    path = write("multi.yaml", MULTI)
    out = cli("validate", path)
    assert out.exit_code == 2
    assert "workflows.bad" in out.stderr and "{y}" in out.stderr
    good = cli("validate", path, "--workflow", "good")
    assert good.exit_code == 0 and "workflow 'good' is valid" in good.stdout


def test_a_cost_budget_needs_a_price_for_every_model(cli: Cli, write: Write) -> None:
    wf = write(
        "unpriced.yaml",
        """\
models:
  mine: {provider: simulated, model: my-finetune}
policy: {budget: {max_cost: 0.5}}
tasks:
  - {id: a, prompt: "Hi", model: mine}
""",
    )
    out = cli("validate", wf)
    assert out.exit_code == 2
    assert "task 'a': model 'mine' (my-finetune) has no price" in out.stderr
    assert "prices:" in out.stderr
    priced = write(
        "priced.yaml", wf.read_text() + "prices:\n  my-finetune: {input: 1, output: 2}\n"
    )
    assert cli("validate", priced).exit_code == 0
