"""``examples/message_history.py`` runs offline and shows the routed, trimmed history."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "message_history.py"


def test_the_example_sends_the_system_message_and_the_last_turns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    sent = out.split("sent:\n", 1)[1].split("   human: Recap", 1)[0].splitlines()
    assert [line.split(":", 1)[0].strip() for line in sent] == ["system", "human", "ai", "human"]
    assert "Do they hunt by sight?" in sent[1] and "How many do they eat?" in sent[3]
    assert "Where do barn owls nest?" not in "\n".join(sent)
    assert "answer: A family can eat thousands of rodents a year." in out
    assert "history trimmed: " in out
