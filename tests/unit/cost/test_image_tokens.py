"""Images count by each provider's rule, and unknown sizes as the model's worst case."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from langchain_runtime.cost import TokenEstimator, with_budget
from langchain_runtime.cost._images import image_size, image_tokens
from langchain_runtime.errors import BudgetExceededError

URL = "https://api.openai.com/v1/chat/completions"


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00"


def jpeg(width: int, height: int) -> bytes:
    app0 = (
        b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    )
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def webp_vp8x(width: int, height: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    body += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def image_message(url: str, detail: str = "high") -> HumanMessage:
    return HumanMessage(
        content=[
            {"type": "text", "text": "describe"},
            {"type": "image_url", "image_url": {"url": url, "detail": detail}},
        ]
    )


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        (png(1024, 1024), (1024, 1024)),
        (gif(320, 200), (320, 200)),
        (jpeg(1920, 1080), (1920, 1080)),
        (webp_vp8x(800, 600), (800, 600)),
        (b"\x89PNG\r\n\x1a\n", None),  # a truncated header: size unknown
        (b"not an image", None),
    ],
)
def test_image_size_reads_headers(raw: bytes, size: tuple[int, int] | None) -> None:
    assert image_size(raw) == size


@pytest.mark.parametrize(
    ("model", "detail", "size", "tokens", "upper"),
    [
        # OpenAI's published examples and rule (tiles of 512px after scaling).
        ("gpt-4o", "high", (1024, 1024), 85 + 4 * 170, False),
        ("gpt-4o", "high", (2048, 4096), 85 + 6 * 170, False),
        ("gpt-4o", "low", (4096, 8192), 85, False),
        ("gpt-4o-mini", "high", (1024, 1024), 2833 + 4 * 5667, False),
        ("gpt-4o-mini", "low", None, 2833, False),
        ("openai:gpt-4o-mini-2024-07-18", "auto", (512, 512), 2833 + 5667, False),
        # Unknown size: the worst case after scaling (768x2048, 8 tiles).
        ("gpt-4o", "high", None, 85 + 8 * 170, True),
        ("gpt-4o-mini", "high", None, 2833 + 8 * 5667, True),
        ("gpt-4o-mini", None, None, 2833 + 8 * 5667, True),
        # Patch-based models: 32px patches, at most 1536, times the multiplier.
        ("gpt-4.1-mini", "high", (1024, 1024), 1659, False),  # 1024 patches x 1.62
        ("gpt-4.1-mini", "high", (320, 320), 162, False),
        ("gpt-4.1-mini", "high", (4096, 4096), 2489, False),  # capped at 1536 patches
        ("gpt-4.1-nano", "high", None, 3779, True),
        # Anthropic: w*h/750 after the long side is scaled to 1568, at most ~1600.
        ("claude-sonnet-4-5", None, (1000, 1000), 1334, False),
        ("claude-sonnet-4-5", None, (200, 200), 54, False),
        ("claude-sonnet-4-5", None, (4000, 4000), 1600, False),
        ("claude-sonnet-4-5", None, None, 1600, True),
        # Gemini: 258 within 384x384, else 258 per 768px tile (16 at most).
        ("gemini-2.5-flash", None, (384, 384), 258, False),
        ("gemini-2.5-flash", None, (1536, 768), 2 * 258, False),
        ("gemini-2.5-flash", None, None, 16 * 258, True),
    ],
)
def test_image_tokens_table(
    model: str, detail: str | None, size: tuple[int, int] | None, tokens: int, upper: bool
) -> None:
    counted = image_tokens(model, detail=detail, size=size)
    assert (counted.tokens, counted.upper_bound) == (tokens, upper)


def test_data_url_image_is_counted_by_its_size() -> None:
    est = TokenEstimator()
    text_only = est.count_messages(
        [HumanMessage([{"type": "text", "text": "describe"}])], "gpt-4o-mini"
    )
    message = image_message(data_url(png(1024, 1024)))
    assert est.count_messages([message], "gpt-4o-mini") == text_only + 25501
    assert est.count_messages([message], "gpt-4o") == text_only + 765
    images = est.count_images([message], "gpt-4o-mini")
    assert (images.tokens, images.upper_bound) == (25501, False)


def test_remote_and_anthropic_blocks_are_upper_bounds() -> None:
    est = TokenEstimator()
    remote = image_message("https://example.com/cat.png")
    assert est.count_images([remote], "gpt-4o-mini").upper_bound is True
    anthropic_block = HumanMessage(
        [
            {
                "type": "image",
                "source": {
                    "type": "base64",
                    "media_type": "image/jpeg",
                    "data": base64.b64encode(jpeg(1000, 1000)).decode(),
                },
            }
        ]
    )
    assert est.count_images([anthropic_block], "claude-sonnet-4-5").tokens == 1334
    explicit = HumanMessage(
        [{"type": "image", "url": "https://x/y.png", "width": 512, "height": 512}]
    )
    assert est.count_images([explicit], "gpt-4o").tokens == 255


def _handler(prompt_tokens: int, seen: list[Any]) -> Any:
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body.get("max_completion_tokens") or body.get("max_tokens"))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 5,
            "total_tokens": prompt_tokens + 5,
        }
        return httpx.Response(
            200,
            json={
                "id": "c1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "a cat"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
        )

    return handle


def chat() -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", max_retries=0, timeout=5)  # type: ignore[arg-type]


def test_truncated_image_header_is_refused_at_the_worst_case() -> None:
    # Reviewer's t12: gpt-4o-mini bills a 1024x1024 image 25501 tokens ($0.0038),
    # more than the $0.002 budget; the old fixed 765 tokens let the call through.
    seen: list[Any] = []
    with respx.mock(assert_all_called=False) as mock:
        mock.post(URL).mock(side_effect=_handler(25511, seen))
        budgeted = with_budget(chat(), max_cost="0.002")
        with pytest.raises(BudgetExceededError):
            budgeted.invoke([image_message("data:image/png;base64,iVBORw0KGgo=")])
    assert seen == []
    assert budgeted.spent.amount == 0


def test_known_size_image_hold_covers_the_bill() -> None:
    seen: list[Any] = []
    message = image_message(data_url(png(1024, 1024)))
    counted = TokenEstimator().count_messages([message], "gpt-4o-mini")
    assert counted > 25501
    with respx.mock() as mock:
        # A provider that counts the request as we do, image included.
        mock.post(URL).mock(side_effect=_handler(counted, seen))
        budgeted = with_budget(chat(), max_cost="0.01")
        budgeted.invoke([message])
    assert len(seen) == 1
    # The output limit sent leaves room for the image's 25501 input tokens.
    input_cost = Decimal(counted) * Decimal("0.15") / 1_000_000
    assert input_cost + Decimal(seen[0]) * Decimal("0.60") / 1_000_000 <= Decimal("0.01")
    assert budgeted.spent.amount <= Decimal("0.01")
