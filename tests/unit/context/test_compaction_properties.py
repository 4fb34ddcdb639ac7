"""Properties of ContextCompactor: it fits or refuses, and it is deterministic."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_runtime.context.compaction import CompactionResult, ContextCompactor
from langchain_runtime.domain import ContextPolicy
from langchain_runtime.errors import ContextTooLargeError
from langchain_runtime.testing import SimulatedChatModel
from tests.unit.context._helpers import total

COMPACTOR = ContextCompactor(min_summary_tokens=8)
SUMMARIZER = SimulatedChatModel(response_tokens=400)

texts = st.text(max_size=400) | st.builds(
    lambda words, n: " ".join(words * n),
    st.lists(
        st.sampled_from(["owl", "night", "hunt", "ünïcode", "🦉", "\n"]), min_size=1, max_size=5
    ),
    st.integers(1, 60),
)
messages = st.lists(
    st.builds(
        lambda kind, text: kind(text),
        st.sampled_from([SystemMessage, HumanMessage, AIMessage]),
        texts,
    ),
    max_size=8,
)
values: st.SearchStrategy[Any] = st.one_of(
    texts, messages, st.integers(), st.dictionaries(st.text(max_size=5), st.integers(), max_size=20)
)
variables = st.dictionaries(
    st.sampled_from(["a", "b", "c", "notes", "history"]), values, max_size=4
)
policies = st.builds(
    ContextPolicy,
    max_tokens=st.none() | st.integers(1, 100),
    strategy=st.sampled_from(["none", "truncate", "keep_last_n", "summarize"]),
    keep_last_n=st.integers(0, 5),
    truncate_to=st.none() | st.integers(1, 120),
    keep=st.sampled_from(["head", "tail"]),
)


def run(vs: dict[str, Any], policy: ContextPolicy) -> CompactionResult | ContextTooLargeError:
    try:
        return COMPACTOR.compact(vs, policy, task_id="t", summarizer=SUMMARIZER)
    except ContextTooLargeError as exc:
        return exc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variables, policies)
def test_compacted_context_fits_or_is_refused(vs: dict[str, Any], policy: ContextPolicy) -> None:
    outcome = run(vs, policy)
    if isinstance(outcome, ContextTooLargeError):
        assert policy.max_tokens is not None
        assert outcome.max_tokens == policy.max_tokens
        assert outcome.tokens is not None and outcome.tokens > policy.max_tokens
        assert outcome.task_id == "t"
        return
    assert outcome.tokens_before == total(vs)
    assert outcome.tokens_after == total(outcome.variables)
    assert set(outcome.variables) == set(vs)
    if policy.max_tokens is not None:
        assert outcome.tokens_after <= policy.max_tokens
    if policy.strategy == "truncate" and policy.truncate_to is not None:
        for d in outcome.details:
            if d.kind != "messages":
                assert d.tokens_after <= policy.truncate_to


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variables, policies)
def test_compaction_is_deterministic(vs: dict[str, Any], policy: ContextPolicy) -> None:
    first, again = run(vs, policy), run(vs, policy)
    reordered = run(dict(reversed(list(vs.items()))), policy)
    if isinstance(first, ContextTooLargeError):
        assert isinstance(again, ContextTooLargeError)
        assert isinstance(reordered, ContextTooLargeError)
        assert str(first) == str(again) == str(reordered)
        return
    assert isinstance(again, CompactionResult) and isinstance(reordered, CompactionResult)
    assert first == again
    assert first.variables == reordered.variables
    assert first.details == reordered.details


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), texts, min_size=1),
    st.integers(1, 200),
    st.sampled_from(["head", "tail"]),
)
def test_truncating_text_always_fits(vs: dict[str, str], limit: int, keep: Any) -> None:
    result = COMPACTOR.compact(vs, ContextPolicy(strategy="truncate", max_tokens=limit, keep=keep))
    assert result.tokens_after == total(result.variables) <= limit
