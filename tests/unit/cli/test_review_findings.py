"""A new user's first session, as a reviewer had it: tables at 80 columns, run-id
prefixes everywhere, store files, a missing sidecar, the resume hint after a budget stop."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.unit.cli._support import EXAMPLE, Cli

WIDTHS = ("80", "120")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TASKS = ("research", "outline", "draft_intro", "draft_body", "draft_conclusion", "review")


def _fits(text: str, width: str) -> None:
    """No line wider than the terminal, nothing cut with an ellipsis (a command to
    copy is the one line left whole: the terminal wraps it, never splitting it)."""
    assert "…" not in text
    lines = [line for line in text.splitlines() if "langchain-runtime resume" not in line]
    assert all(len(line) <= int(width) for line in lines), text


def _stopped_run(cli: Cli, db: Path, width: str) -> tuple[str, str]:
    """A run of the example stopped by its budget, kept in ``db``: (stdout, run id)."""
    out = cli("run", EXAMPLE, "-i", "topic=owls", "--budget", "0.00008", "--store", db,
              env={"COLUMNS": width})  # fmt: skip
    assert out.exit_code == 1, out.stderr
    found = UUID.search(out.stderr)
    assert found is not None, out.stderr
    # the table and notes (each output's first line after them is cut on purpose)
    table = out.stdout.split("research (simulated: placeholder text)")[0]
    return table, found.group(0)


def _words(line: str) -> list[str]:
    return re.findall(r"[\w:$.,/-]+", line)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_budget_stop_shows_whole_ids_states_costs_and_notes(
    cli: Cli, tmp_path: Path, width: str
) -> None:
    text, run_id = _stopped_run(cli, tmp_path / "cli.db", width)
    _fits(text, width)
    lines = text.splitlines()
    assert any(run_id in line for line in lines)  # the header's id, whole
    summary = next(line for line in lines if "budget_exceeded" in line)
    assert re.search(r"budget_exceeded · [0-9.]+s · 329 tokens · \$0\.0000797", summary)
    words = [w for line in lines for w in _words(line)]
    for task in TASKS:
        assert task in words, task
    for state in ("completed", "cancelled", "failed", "skipped"):
        assert state in words
    assert "$0.0000797" in words
    # the notes are whole sentences, and no task id is split over two lines
    joined = " ".join(line.strip(" │") for line in lines)
    assert "draft_conclusion: task 'draft_conclusion' cancelled: budget exceeded" in joined
    assert "(left: 0.0000003 USD)" in joined
    ids = [w.strip("':") for w in words if w.startswith(("draft", "'draft", "rev", "'rev"))]
    assert ids and set(ids) <= set(TASKS), ids


@pytest.mark.parametrize("width", WIDTHS)
def test_stored_runs_list_and_status_fit(cli: Cli, tmp_path: Path, width: str) -> None:
    db = tmp_path / "cli.db"
    _, run_id = _stopped_run(cli, db, width)
    listed = cli("runs", "list", "--store", db, env={"COLUMNS": width})
    assert listed.exit_code == 0, listed.stderr
    _fits(listed.stdout, width)
    words = _words(listed.stdout)
    assert {run_id, "research", "budget_exceeded", "2/6", "$0.0000797"} <= set(words)
    status = cli("runs", "status", run_id[:8], "--store", db, env={"COLUMNS": width})
    assert status.exit_code == 0, status.stderr
    _fits(status.stdout, width)
    assert run_id in status.stdout and "draft_conclusion" in _words(status.stdout)
    assert f"resume {run_id} --store {db}" in status.stdout.replace("\n", "")


def test_runs_status_store_says_when_there_is_no_such_run(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    _stopped_run(cli, db, "80")
    out = cli("runs", "status", "zzz", "--store", db)
    assert out.exit_code == 2
    assert f"no run 'zzz' in run store {db}" in out.stderr


def test_runs_help_is_honest_about_store_files(cli: Cli) -> None:
    listed = cli("runs", "list", "--help")
    assert "keep runs there" not in listed.stdout
    assert "Read a run store file" in listed.stdout
    status = cli("runs", "status", "--help")
    assert "--store" in status.stdout


@pytest.mark.parametrize("width", WIDTHS)
def test_sidecar_runs_list_and_status_fit(cli: Cli, sidecar: str, width: str) -> None:
    from langchain_runtime.api import RuntimeClient

    with RuntimeClient(sidecar, timeout=10) as client:
        run = client.start_run(
            tasks=[
                {"id": "draft_conclusion", "prompt": "hi", "model": "simulated"},
                {"id": "review", "prompt": "{draft_conclusion}", "model": "simulated",
                 "deps": ["draft_conclusion"]},
            ]
        )  # fmt: skip
        client.wait(run.run_id, timeout=10, poll_interval=0.02)
        ids = [r.run_id for r in client.list_runs().items]
    listed = cli("runs", "list", "--url", sidecar, env={"COLUMNS": width})
    assert listed.exit_code == 0, listed.stderr
    _fits(listed.stdout, width)
    words = _words(listed.stdout)
    assert set(ids) <= set(words)
    assert "completed" in words
    status = cli("runs", "status", run.run_id, "--url", sidecar, env={"COLUMNS": width})
    assert status.exit_code == 0, status.stderr
    _fits(status.stdout, width)
    assert "draft_conclusion" in _words(status.stdout)
    assert re.search(r"completed · [0-9,]+ tokens · \$", status.stdout)


def test_every_run_command_takes_a_unique_prefix(cli: Cli, sidecar: str) -> None:
    from langchain_runtime.api import RuntimeClient

    with RuntimeClient(sidecar, timeout=10) as client:
        long_id = next(r.run_id for r in client.list_runs().items if len(r.run_id) == 36)
    prefix = long_id[:6]
    wait = cli("runs", "wait", prefix, "--url", sidecar, "--json")
    assert wait.exit_code == 0, wait.stderr
    assert f'"run_id": "{long_id}"' in wait.stdout
    events = cli("runs", "events", prefix, "--url", sidecar)
    assert events.exit_code == 0, events.stderr
    assert "run_completed" in events.stdout or "completed" in events.stdout
    abort = cli("runs", "abort", prefix, "--url", sidecar)
    assert f"no run with id '{prefix}'" not in abort.stderr
    assert long_id in abort.stdout + abort.stderr
    resume = cli("resume", prefix, "--url", sidecar)
    # found (a memory store cannot resume: the server says so about the run it found)
    assert f"no run with id '{prefix}'" not in resume.stderr
    assert "keeps no durable runs" in resume.stderr
    ambiguous = cli("runs", "abort", "abc-", "--url", sidecar)
    assert ambiguous.exit_code == 2 and "matches 2 runs" in ambiguous.stderr


def test_no_sidecar_says_how_to_get_one(cli: Cli) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    out = cli("runs", "list", "--url", url)
    assert out.exit_code == 1
    assert out.stderr.strip() == (
        f"error: no sidecar at {url}: start one with `langchain-runtime serve`, "
        "pass --url, or use --store FILE"
    )


def test_store_file_errors_are_one_usage_line(cli: Cli, tmp_path: Path) -> None:
    missing = cli("runs", "list", "--store", tmp_path / "nope.db")
    assert missing.exit_code == 2
    assert "(--store names the file of a run --store)" not in missing.stderr
    assert "--store names a file written by `langchain-runtime run --store`" in missing.stderr
    foreign = tmp_path / "notes.db"
    foreign.write_text("hello\n" * 100)
    bad = cli("runs", "status", "abc", "--store", foreign)
    assert bad.exit_code == 2 and "is not an SQLite database" in bad.stderr


def test_the_resume_hint_after_a_budget_stop_raises_the_limit(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    out = cli("run", EXAMPLE, "-i", "topic=owls", "--max-cost", "0.00008", "--store", db)
    assert out.exit_code == 1
    hint = re.search(r"resume it with: (langchain-runtime resume .*)$", out.stderr.strip())
    assert hint is not None, out.stderr
    assert "--max-cost 0.00016" in hint.group(1)
    args = hint.group(1).split()[1:]
    resumed = cli(*args)
    assert "ended budget_exceeded" not in resumed.stderr or "--max-cost 0.00032" in resumed.stderr
    assert "restored" in resumed.stderr


def test_run_takes_max_cost_like_resume(cli: Cli) -> None:
    out = cli("run", EXAMPLE, "-i", "topic=owls", "--max-cost", "0.00008", "--json")
    assert out.exit_code == 1
    assert out.json()["state"] == "budget_exceeded"
    assert "--max-cost" in cli("run", "--help").stdout


def test_serve_on_a_port_in_use_is_one_line(cli: Cli) -> None:
    pytest.importorskip("fastapi", reason="needs the 'server' extra")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = cli("serve", "--port", str(port), "--store", ":memory:")
    assert out.exit_code == 2
    assert out.stderr == f"error: port {port} is in use; pick another with --port\n"


# -- budgets, models, estimate ---------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
def test_budgets_show_never_cuts_the_scope(cli: Cli, tmp_path: Path, width: str) -> None:
    ledger = f"sqlite:///{tmp_path / 'b.db'}"
    assert cli("budgets", "set", "team:research", "--ledger", ledger, "--max-cost", "25",
               "--window", "day").exit_code == 0  # fmt: skip
    for args in (("show", "team:research"), ("list",)):
        out = cli("budgets", *args, "--ledger", ledger, env={"COLUMNS": width})
        assert out.exit_code == 0, out.stderr
        _fits(out.stdout, width)
        assert "team:research" in _words(out.stdout) and "$25.000000" in out.stdout


def test_budgets_show_of_a_misspelled_scope_suggests_the_known_one(
    cli: Cli, tmp_path: Path
) -> None:
    ledger = f"sqlite:///{tmp_path / 'b.db'}"
    cli("budgets", "set", "team:research", "--ledger", ledger, "--max-cost", "25")
    out = cli("budgets", "show", "team:reserch", "--ledger", ledger)
    assert out.exit_code == 1
    assert "no limits set for 'team:reserch'" in out.stderr
    assert "did you mean 'team:research'?" in out.stderr


@pytest.mark.parametrize("width", WIDTHS)
def test_models_show_whole_provider_names(cli: Cli, width: str) -> None:
    out = cli("models", "--config", EXAMPLE, env={"COLUMNS": width})
    assert out.exit_code == 0, out.stderr
    _fits(out.stdout, width)
    assert "vertex_ai" not in out.stdout
    assert re.search(r"^gemini-2\.5-pro\s+google\s", out.stdout, re.M)
    assert "latency=0.15, max_tokens=200, response_tokens=80" in out.stdout  # whole
    google = cli("models", "--provider", "google", "--json")
    assert google.exit_code == 0
    assert {m["id"] for m in google.json()["models"]} >= {"gemini-2.5-pro", "gemini-2.5-flash"}
    assert re.search(r"\(3 of \d+ models\)", cli("models", "--provider", "google").stdout)


def test_models_refuses_an_unknown_provider(cli: Cli) -> None:
    out = cli("models", "--provider", "openaii")
    assert out.exit_code == 2
    assert "unknown provider 'openaii'; did you mean 'openai'?" in out.stderr
    assert "known: anthropic, google, openai, simulated" in out.stderr


@pytest.mark.parametrize("width", WIDTHS)
def test_estimate_never_splits_a_task_id(cli: Cli, width: str) -> None:
    out = cli("estimate", EXAMPLE, "-i", "topic=owls", env={"COLUMNS": width})
    assert out.exit_code == 0, out.stderr
    _fits(out.stdout, width)
    words = _words(out.stdout)
    for task in TASKS:
        assert task in words
    assert "usion" not in words


UNPRICED = """\
name: local
models:
  mine: {provider: simulated, model: my-llm-7b}
model: mine
tasks:
  - id: a
    prompt: "Say hi about {topic}."
"""


def test_estimate_of_an_unpriced_model_says_how_to_price_it(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(UNPRICED, encoding="utf-8")
    hint = "add it under `prices:`, e.g. prices: {my-llm-7b: {input: 1.0, output: 2.0}}"
    free = cli("estimate", path, "-i", "topic=owls")
    assert free.exit_code == 0
    assert hint in free.stderr and free.stderr.startswith("warning: ")
    capped = cli("estimate", path, "-i", "topic=owls", "--max-cost", "1")
    assert capped.exit_code == 2
    assert hint in capped.stderr and "cost budget" in capped.stderr


# -- validate says what run would say -----------------------------------------------------
SCOPED = """\
name: scoped
model: simulated
scopes: [team:research]
policy:
  budget: {max_cost: 0.01}
tasks:
  - id: a
    prompt: "hi {topic}"
"""


def test_validate_refuses_scopes_without_a_ledger_as_run_does(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "scoped.yaml"
    path.write_text(SCOPED, encoding="utf-8")
    checked = cli("validate", path)
    ran = cli("run", path, "-i", "topic=x")
    assert checked.exit_code == ran.exit_code == 2
    assert checked.stderr == ran.stderr
    assert f"{path}:3: scopes: the scopes ['team:research'] need a shared budget ledger" in (
        checked.stderr
    )
    ledger = tmp_path / "budgets.db"
    path.write_text(SCOPED + f"ledger: sqlite:///{ledger}\n", encoding="utf-8")
    ok = cli("validate", path)
    assert ok.exit_code == 0, ok.stderr
    assert not ledger.exists()  # checking a file opens no ledger


def test_validate_warns_of_a_missing_api_key(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    example = EXAMPLE.with_name("research-openai.yaml")
    out = cli("validate", example)
    assert out.exit_code == 0
    assert out.stderr.startswith("warning: running needs $OPENAI_API_KEY, which is not set")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert "warning" not in cli("validate", example).stderr


def test_simulated_only_options_are_refused_for_a_real_provider(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "real.yaml"
    path.write_text(
        "models:\n  gpt: {provider: openai, model: gpt-4o-mini, latency: 0.1, max_tokens: 50}\n"
        "model: gpt\ntasks:\n  - id: a\n    prompt: hi\n",
        encoding="utf-8",
    )
    out = cli("validate", path)
    assert out.exit_code == 2
    assert (
        f"{path}:2: models.gpt.latency: only the simulated provider understands 'latency'; "
        "provider 'openai' would receive it as a model parameter" in out.stderr
    )
    assert "max_tokens" not in out.stderr  # every provider takes that one
