"""ContextCompactor: every strategy, token-exact, and every way it refuses."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_runtime.context.compaction import CompactionResult, ContextCompactor
from langchain_runtime.domain import ContextPolicy, Usage
from langchain_runtime.errors import ConfigurationError, ContextTooLargeError
from langchain_runtime.testing import SimulatedChatModel
from tests.unit.context._helpers import EST, Recorder, tokens, total, words

MARKER = re.compile(r"\[\.\.\. (\d+) tokens truncated \.\.\.\]")
TEXT = " ".join(f"sentence {i} says something about owls." for i in range(60))


def policy(**kwargs: Any) -> ContextPolicy:
    return ContextPolicy(**kwargs)


@pytest.fixture
def compactor() -> ContextCompactor:
    return ContextCompactor()


def assert_consistent(result: CompactionResult) -> None:
    """The report matches an independent recount of what will be sent."""
    assert result.tokens_after == total(result.variables)
    for d in result.details:
        assert d.tokens_after == tokens(result.variables[d.name])
    if result.max_tokens is not None:
        assert result.tokens_after <= result.max_tokens


# ---------------------------------------------------------------------- none
def test_none_without_limit_changes_nothing_and_counts(compactor: ContextCompactor) -> None:
    history = [SystemMessage("be brief"), HumanMessage("hi")]
    variables = {"notes": TEXT, "history": history, "n": 42}
    result = compactor.compact(variables, policy())
    assert result.variables == variables
    assert result.variables["history"] is history
    assert not result.changed
    assert result.tokens_before == result.tokens_after == total(variables)
    assert [d.name for d in result.details] == ["history", "n", "notes"]


def test_none_over_limit_raises_naming_task_tokens_and_limit(
    compactor: ContextCompactor,
) -> None:
    n = EST.count_text(TEXT)
    with pytest.raises(ContextTooLargeError) as info:
        compactor.compact({"notes": TEXT}, policy(max_tokens=n - 1), task_id="write")
    err = info.value
    assert (err.task_id, err.tokens, err.max_tokens) == ("write", n, n - 1)
    assert "'write'" in str(err) and str(n) in str(err) and str(n - 1) in str(err)
    assert err.code == "context_too_large" and not err.is_retryable


def test_none_at_exactly_the_limit_fits(compactor: ContextCompactor) -> None:
    n = EST.count_text(TEXT)
    assert not compactor.compact({"notes": TEXT}, policy(max_tokens=n)).changed


# ---------------------------------------------------------------------- truncate
def test_truncate_head_keeps_the_start_and_says_how_much_was_cut(
    compactor: ContextCompactor,
) -> None:
    n = EST.count_text(TEXT)
    result = compactor.compact({"notes": TEXT}, policy(strategy="truncate", truncate_to=40))
    out = result.variables["notes"]
    kept, _, marker = out.rpartition("\n")
    match = MARKER.fullmatch(marker)
    assert match is not None
    assert TEXT.startswith(kept) and kept
    assert int(match.group(1)) == n - EST.count_text(kept)
    assert EST.count_text(out) <= 40
    assert EST.count_text(out) >= 38  # the marker's overhead is all that is lost
    assert result.details[0].action == "truncated" and result.changed
    assert result.tokens_before == n
    assert_consistent(result)


def test_truncate_tail_keeps_the_end(compactor: ContextCompactor) -> None:
    n = EST.count_text(TEXT)
    pol = policy(strategy="truncate", truncate_to=40, keep="tail")
    out = compactor.compact({"notes": TEXT}, pol).variables["notes"]
    marker, _, kept = out.partition("\n")
    match = MARKER.fullmatch(marker)
    assert match is not None
    assert TEXT.endswith(kept) and kept
    assert int(match.group(1)) == n - EST.count_text(kept)
    assert EST.count_text(out) <= 40


def test_truncate_to_leaves_short_variables_alone(compactor: ContextCompactor) -> None:
    result = compactor.compact(
        {"a": TEXT, "b": "short"}, policy(strategy="truncate", truncate_to=30)
    )
    assert result.variables["b"] == "short"
    assert {d.name: d.action for d in result.details} == {"a": "truncated", "b": "kept"}


def test_truncate_to_max_tokens_cuts_the_largest_first(compactor: ContextCompactor) -> None:
    variables = {"big": words(300), "medium": words(60, "note"), "small": words(10, "fact")}
    result = compactor.compact(variables, policy(strategy="truncate", max_tokens=150))
    assert result.variables["small"] == variables["small"]
    assert result.variables["medium"] == variables["medium"]
    assert MARKER.search(result.variables["big"])
    assert 145 <= result.tokens_after <= 150
    assert_consistent(result)


def test_truncate_to_max_tokens_levels_the_largest_variables(
    compactor: ContextCompactor,
) -> None:
    variables = {"a": words(200), "b": words(180, "note"), "c": words(20, "fact")}
    result = compactor.compact(variables, policy(strategy="truncate", max_tokens=120))
    sizes = {d.name: d.tokens_after for d in result.details}
    assert sizes["c"] == 20
    # a and b are cut to one level: 50 each (marker included)
    assert sizes["a"] <= 50 and sizes["b"] <= 50
    assert abs(sizes["a"] - sizes["b"]) <= 1
    assert_consistent(result)


def test_truncate_is_deterministic_whatever_the_variable_order(
    compactor: ContextCompactor,
) -> None:
    variables = {"b": words(100, "note"), "a": words(100), "c": TEXT}
    pol = policy(strategy="truncate", max_tokens=101)
    first = compactor.compact(variables, pol)
    again = compactor.compact(variables, pol)
    reordered = compactor.compact(dict(reversed(list(variables.items()))), pol)
    assert first == again
    assert first.variables == reordered.variables
    assert list(first.variables) == ["b", "a", "c"]  # the caller's order is kept


def test_truncate_to_and_max_tokens_together(compactor: ContextCompactor) -> None:
    variables = {"a": words(100), "b": words(100, "note"), "c": words(100, "fact")}
    result = compactor.compact(
        variables, policy(strategy="truncate", truncate_to=50, max_tokens=120)
    )
    assert result.tokens_after <= 120
    for value in result.variables.values():
        assert len(MARKER.findall(value)) == 1  # cut once, from the original
    assert_consistent(result)


def test_truncate_below_the_marker_size_cuts_without_a_marker(
    compactor: ContextCompactor,
) -> None:
    out = compactor.compact({"t": TEXT}, policy(strategy="truncate", truncate_to=3))
    assert out.variables["t"] == EST.truncate_text(TEXT, 3)
    assert out.tokens_after == 3


def test_truncate_with_a_custom_marker() -> None:
    compactor = ContextCompactor(marker="<{removed} cut>")
    out = compactor.compact({"t": words(50)}, policy(strategy="truncate", truncate_to=10))
    assert re.fullmatch(r"(word ?)+\n<\d+ cut>", out.variables["t"])
    assert out.tokens_after <= 10


def test_truncate_other_objects_by_their_text(compactor: ContextCompactor) -> None:
    data = {"rows": list(range(200))}
    result = compactor.compact({"data": data}, policy(strategy="truncate", max_tokens=30))
    out = result.variables["data"]
    assert isinstance(out, str) and str(data).startswith(out.rpartition("\n")[0])
    assert result.details[0].tokens_before == EST.count_text(str(data))
    assert_consistent(result)


def test_truncate_messages_tail_drops_old_messages_keeps_system(
    compactor: ContextCompactor,
) -> None:
    history: list[BaseMessage] = [SystemMessage("You are terse.")]
    for i in range(10):
        history += [HumanMessage(f"question {i}"), AIMessage(f"answer {i}")]
    keep = history[0:1] + history[-2:]
    limit = tokens(keep)
    result = compactor.compact(
        {"history": history}, policy(strategy="truncate", max_tokens=limit, keep="tail")
    )
    assert result.variables["history"] == keep
    assert result.tokens_after == limit


def test_truncate_messages_cuts_the_boundary_message(compactor: ContextCompactor) -> None:
    history = [SystemMessage("You are terse."), HumanMessage(TEXT), AIMessage("ok")]
    result = compactor.compact(
        {"history": history}, policy(strategy="truncate", max_tokens=60, keep="head")
    )
    out = result.variables["history"]
    assert [m.type for m in out] == ["system", "human"]
    assert out[0] == history[0]
    assert MARKER.search(out[1].content)
    assert TEXT.startswith(out[1].content.rpartition("\n")[0])
    assert_consistent(result)


def test_truncate_cannot_cut_system_messages(compactor: ContextCompactor) -> None:
    history = [SystemMessage(TEXT), HumanMessage("hi")]
    floor = tokens(history[:1])
    with pytest.raises(ContextTooLargeError, match="system messages are never cut") as info:
        compactor.compact(
            {"history": history},
            policy(strategy="truncate", max_tokens=floor - 1),
            task_id="t1",
        )
    assert info.value.tokens == floor and info.value.max_tokens == floor - 1


# ---------------------------------------------------------------------- keep_last_n
def test_keep_last_n_keeps_system_and_last_messages(compactor: ContextCompactor) -> None:
    history: list[BaseMessage] = [SystemMessage("rules")]
    history += [HumanMessage(f"m{i}") for i in range(8)]
    result = compactor.compact(
        {"history": history, "notes": TEXT}, policy(strategy="keep_last_n", keep_last_n=3)
    )
    assert result.variables["history"] == [history[0], *history[-3:]]
    assert result.variables["notes"] == TEXT
    assert {d.name: d.action for d in result.details} == {"history": "trimmed", "notes": "kept"}
    assert result.tokens_before - result.tokens_after == tokens(history[1:-3])
    assert_consistent(result)


def test_keep_last_zero_keeps_only_system(compactor: ContextCompactor) -> None:
    history = [HumanMessage("a"), SystemMessage("rules"), AIMessage("b")]
    out = compactor.compact({"h": history}, policy(strategy="keep_last_n", keep_last_n=0))
    assert out.variables["h"] == [history[1]]


def test_keep_last_n_short_history_is_unchanged(compactor: ContextCompactor) -> None:
    history = [SystemMessage("rules"), HumanMessage("hi")]
    out = compactor.compact({"h": history}, policy(strategy="keep_last_n", keep_last_n=5))
    assert not out.changed and out.variables["h"] is history


def test_keep_last_n_drops_tool_results_whose_call_was_dropped(
    compactor: ContextCompactor,
) -> None:
    call = AIMessage("", tool_calls=[{"name": "search", "args": {"q": "owls"}, "id": "c1"}])
    history = [
        SystemMessage("rules"),
        HumanMessage("find owls"),
        call,
        ToolMessage("owls are birds", tool_call_id="c1"),
        AIMessage("Owls are birds."),
        HumanMessage("thanks"),
    ]
    out = compactor.compact({"h": history}, policy(strategy="keep_last_n", keep_last_n=3))
    assert out.variables["h"] == [history[0], history[4], history[5]]


def test_keep_last_n_still_too_large_raises(compactor: ContextCompactor) -> None:
    history = [SystemMessage("rules"), HumanMessage(TEXT)]
    with pytest.raises(ContextTooLargeError) as info:
        compactor.compact(
            {"h": history},
            policy(strategy="keep_last_n", keep_last_n=1, max_tokens=20),
            task_id="chat",
        )
    assert info.value.task_id == "chat" and info.value.tokens == tokens(history)


# ---------------------------------------------------------------------- summarize
@pytest.mark.anyio
async def test_summarize_largest_variable_reports_usage_and_fits(
    compactor: ContextCompactor,
) -> None:
    model = SimulatedChatModel(response_tokens=1000)
    recorder = Recorder()
    variables = {"research": TEXT, "topic": "owls"}
    result = await compactor.acompact(
        variables,
        policy(strategy="summarize", max_tokens=100),
        task_id="write",
        summarizer=model,
        config={"callbacks": [recorder], "metadata": {"lcr_task_id": "write"}},
    )
    assert result.summarizer_calls == 1 and len(recorder.starts) == 1
    assert result.variables["topic"] == "owls"
    assert {d.name: d.action for d in result.details} == {"research": "summarized", "topic": "kept"}
    # the summarizer was asked for what is left, and the call went through callbacks
    asked = recorder.starts[0]["invocation_params"]["max_tokens"]
    assert asked == 100 - tokens("owls")
    assert recorder.starts[0]["metadata"]["lcr_task_id"] == "write"
    assert recorder.starts[0]["metadata"]["lcr_context_variable"] == "research"
    assert TEXT in recorder.starts[0]["messages"][-1].content
    # the usage reported is the provider's, and the summary fits
    assert result.summarizer_usage == Usage.from_usage_metadata(recorder.usages[0])
    assert result.summarizer_usage.output_tokens == asked
    assert not result.summarizer_usage.estimated
    assert EST.count_text(result.variables["research"]) == asked
    assert_consistent(result)
    json.dumps(result.as_event_data())


def test_summarize_sync_gives_the_same_result(compactor: ContextCompactor) -> None:
    import asyncio

    variables = {"research": TEXT, "topic": "owls"}
    pol = policy(strategy="summarize", max_tokens=100)
    model = SimulatedChatModel(response_tokens=1000)
    sync = compactor.compact(variables, pol, summarizer=model)
    async_ = asyncio.run(compactor.acompact(variables, pol, summarizer=model))
    assert sync == async_


def test_summarize_cuts_a_summary_that_is_too_long(compactor: ContextCompactor) -> None:
    chatty = GenericFakeChatModel(messages=iter([words(500)]))  # ignores max_tokens
    result = compactor.compact(
        {"notes": TEXT}, policy(strategy="summarize", max_tokens=50), summarizer=chatty
    )
    out = result.variables["notes"]
    assert MARKER.search(out) and out.startswith("word word")
    assert result.tokens_after <= 50
    # no usage_metadata from this model: estimated from the request and the reply
    assert result.summarizer_usage.estimated
    assert result.summarizer_usage.output_tokens == 500


def test_summarize_message_list_keeps_system_and_adds_a_summary_message(
    compactor: ContextCompactor,
) -> None:
    history: list[BaseMessage] = [SystemMessage("You are terse.")]
    history += [HumanMessage(f"Tell me fact {i} about owls, in detail.") for i in range(30)]
    result = compactor.compact(
        {"history": history},
        policy(strategy="summarize", max_tokens=60),
        summarizer=SimulatedChatModel(response_tokens=1000),
    )
    out = result.variables["history"]
    assert out[0] == history[0] and len(out) == 2
    assert isinstance(out[1], HumanMessage)
    assert out[1].text.startswith("Summary of the earlier conversation:\n")
    assert result.tokens_after <= 60
    assert_consistent(result)


def test_summarize_several_variables_largest_first() -> None:
    compactor = ContextCompactor(min_summary_tokens=20)
    variables = {"a": words(300), "b": words(200, "note"), "c": words(30, "fact")}
    recorder = Recorder()
    result = compactor.compact(
        variables,
        policy(strategy="summarize", max_tokens=100),
        summarizer=SimulatedChatModel(response_tokens=1000),
        config={"callbacks": [recorder]},
    )
    assert [s["metadata"]["lcr_context_variable"] for s in recorder.starts] == ["a", "b"]
    assert result.variables["c"] == variables["c"]
    # the 70 tokens left are shared in proportion to size
    assert [s["invocation_params"]["max_tokens"] for s in recorder.starts] == [42, 28]
    assert result.summarizer_usage.output_tokens == 70
    assert_consistent(result)


def test_summarize_that_fits_makes_no_call(compactor: ContextCompactor) -> None:
    recorder = Recorder()
    result = compactor.compact(
        {"notes": "short"},
        policy(strategy="summarize", max_tokens=100),
        summarizer=SimulatedChatModel(),
        config={"callbacks": [recorder]},
    )
    assert not result.changed and result.summarizer_calls == 0 and not recorder.starts
    assert result.summarizer_usage == Usage()


def test_summarize_impossible_raises_before_any_call(compactor: ContextCompactor) -> None:
    recorder = Recorder()
    history = [SystemMessage(TEXT), HumanMessage(TEXT)]
    with pytest.raises(ContextTooLargeError, match="even with every variable summarized") as i:
        compactor.compact(
            {"history": history},
            policy(strategy="summarize", max_tokens=50),
            task_id="t",
            summarizer=SimulatedChatModel(),
            config={"callbacks": [recorder]},
        )
    assert recorder.starts == []
    assert i.value.task_id == "t" and i.value.max_tokens == 50
    assert i.value.tokens is not None and i.value.tokens > 50


def test_summarize_without_a_summarizer_is_a_configuration_error(
    compactor: ContextCompactor,
) -> None:
    with pytest.raises(ConfigurationError, match="summarizer"):
        compactor.compact({"notes": TEXT}, policy(strategy="summarize", max_tokens=10), task_id="t")


def test_a_stop_iteration_from_the_model_is_not_taken_for_the_end(
    compactor: ContextCompactor,
) -> None:
    exhausted = GenericFakeChatModel(messages=iter([]))
    with pytest.raises(StopIteration):
        compactor.compact(
            {"notes": TEXT}, policy(strategy="summarize", max_tokens=10), summarizer=exhausted
        )


@pytest.mark.anyio
async def test_summarizer_errors_reach_the_caller(compactor: ContextCompactor) -> None:
    def down() -> Iterator[str]:
        raise ConnectionError("provider down")
        yield "never"

    with pytest.raises(ConnectionError, match="provider down"):
        await compactor.acompact(
            {"notes": TEXT},
            policy(strategy="summarize", max_tokens=10),
            summarizer=GenericFakeChatModel(messages=down()),
        )


def test_min_summary_tokens_must_be_positive() -> None:
    with pytest.raises(ValueError, match="min_summary_tokens"):
        ContextCompactor(min_summary_tokens=0)
