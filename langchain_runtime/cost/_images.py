"""Input tokens of an image in a chat message, per provider's published rule.

A budget hold must never count fewer tokens than the provider bills. When an
image's size is known (a ``data:`` URL whose PNG/JPEG/GIF/WebP header we can read,
or an explicit ``width``/``height`` on the block) it is counted by the model's rule;
when it is not (a remote URL), the largest count the model can bill at the requested
detail is used, and :attr:`ImageTokens.upper_bound` says so.

Rules (OpenAI "Images and vision", Anthropic "Vision", Google "Token counting"):

* OpenAI, tile-based models: fit within 2048x2048, then scale the short side down
  to 768; ``base + per_tile * tiles`` with 512px tiles (gpt-4o: 85 + 170/tile,
  gpt-4o-mini: 2833 + 5667/tile, ...); ``detail="low"`` is the base only.
* OpenAI, patch-based models (gpt-4.1-mini/nano, gpt-5-mini/nano, o4-mini): 32px
  patches, at most 1536, times the model's multiplier.
* Anthropic: ``width * height / 750`` after scaling the long side to 1568, never
  more than about 1600 tokens.
* Gemini: 258 for an image within 384x384, else 258 per 768x768 tile (at most
  3072x3072 after Google's scaling: 16 tiles worst case).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "IMAGE_BLOCKS",
    "ImageTokens",
    "block_image_tokens",
    "image_blocks",
    "image_size",
    "image_tokens",
]

#: (base, per tile) of OpenAI's tile-based vision models, longest prefix first.
_OPENAI_TILES: tuple[tuple[str, int, int], ...] = (
    ("gpt-4o-mini", 2833, 5667),
    ("gpt-5-chat", 70, 140),
    ("gpt-5", 70, 140),
    ("computer-use", 65, 129),
    ("o1", 75, 150),
    ("o3", 75, 150),
    ("gpt-4.5", 85, 170),
    ("gpt-4.1", 85, 170),
    ("gpt-4o", 85, 170),
    ("chatgpt-4o", 85, 170),
    ("gpt-4", 85, 170),
)
#: Multiplier of OpenAI's patch-based vision models (checked before the tiles).
_OPENAI_PATCHES: tuple[tuple[str, float], ...] = (
    ("gpt-5-mini", 1.62),
    ("gpt-5-nano", 2.46),
    ("gpt-4.1-mini", 1.62),
    ("gpt-4.1-nano", 2.46),
    ("o4-mini", 1.72),
)
_MAX_PATCHES = 1536
#: Content block types that carry an image.
IMAGE_BLOCKS = frozenset({"image", "image_url", "input_image"})
_ANTHROPIC_MAX_TOKENS = 1600
_GEMINI_TILE_TOKENS = 258
_GEMINI_MAX_TILES = 16
_PREFIX = re.compile(r"^(?:[a-z][a-z0-9_\-]*[:/])+")


@dataclass(frozen=True)
class ImageTokens:
    """Tokens an image adds to a request.

    Attributes:
        tokens: The count (never below what the provider bills, by its rule).
        upper_bound: True when the image's size was unknown and ``tokens`` is the
            worst case for the model at the requested detail.
    """

    tokens: int
    upper_bound: bool


def _family(model: str | None) -> str:
    name = _PREFIX.sub("", (model or "").strip().lower())
    if name.startswith("claude") or "anthropic" in (model or "").lower():
        return "anthropic"
    if name.startswith(("gemini", "gemma")) or "google" in (model or "").lower():
        return "google"
    return "openai"


def _bare(model: str | None) -> str:
    return _PREFIX.sub("", (model or "").strip().lower())


def _openai_high_tiles(width: int, height: int) -> int:
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    return math.ceil(w / 512) * math.ceil(h / 512)


def _openai(model: str, detail: str, size: tuple[int, int] | None) -> int:
    name = _bare(model)
    for prefix, multiplier in _OPENAI_PATCHES:
        if name.startswith(prefix):
            if size is None:
                patches = _MAX_PATCHES
            else:
                patches = min(math.ceil(size[0] / 32) * math.ceil(size[1] / 32), _MAX_PATCHES)
            return math.ceil(round(patches * multiplier, 6))  # 100 * 1.62 is 162, not 163
    base, per_tile = 85, 170
    for prefix, b, t in _OPENAI_TILES:
        if name.startswith(prefix):
            base, per_tile = b, t
            break
    if detail == "low":
        return base
    # Worst case after OpenAI's scaling: 768x2048, i.e. 2x4 tiles.
    tiles = 8 if size is None else _openai_high_tiles(*size)
    return base + per_tile * tiles


def _anthropic(size: tuple[int, int] | None) -> int:
    if size is None:
        return _ANTHROPIC_MAX_TOKENS
    w, h = float(size[0]), float(size[1])
    if max(w, h) > 1568:
        scale = 1568 / max(w, h)
        w, h = w * scale, h * scale
    return min(math.ceil(w * h / 750), _ANTHROPIC_MAX_TOKENS)


def _google(size: tuple[int, int] | None) -> int:
    if size is None:
        return _GEMINI_TILE_TOKENS * _GEMINI_MAX_TILES
    w, h = size
    if w <= 384 and h <= 384:
        return _GEMINI_TILE_TOKENS
    if max(w, h) > 3072:
        scale = 3072 / max(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    tiles = min(math.ceil(w / 768) * math.ceil(h / 768), _GEMINI_MAX_TILES)
    return _GEMINI_TILE_TOKENS * tiles


def image_tokens(
    model: str | None, *, detail: str | None = None, size: tuple[int, int] | None = None
) -> ImageTokens:
    """Tokens one image costs ``model`` as input.

    Args:
        model: The model name (provider prefixes ignored); unknown names use gpt-4o's rule.
        detail: OpenAI's ``"low"``, ``"high"`` or ``"auto"`` (counted as high).
        size: ``(width, height)`` in pixels when known; None means the worst case.

    Example:
        >>> image_tokens("gpt-4o-mini", detail="high", size=(1024, 1024)).tokens
        25501
        >>> image_tokens("gpt-4o", detail="high", size=(1024, 1024)).tokens
        765
        >>> image_tokens("gpt-4o", detail="low")
        ImageTokens(tokens=85, upper_bound=False)
        >>> image_tokens("claude-sonnet-4-5", size=(1000, 1000)).tokens
        1334
    """
    family = _family(model)
    level = (detail or "auto").lower()
    if family == "anthropic":
        return ImageTokens(_anthropic(size), size is None)
    if family == "google":
        return ImageTokens(_google(size), size is None)
    tokens = _openai(model or "", level, size)
    patch_based = any(_bare(model).startswith(p) for p, _ in _OPENAI_PATCHES)
    return ImageTokens(tokens, size is None and (level != "low" or patch_based))


# -- reading an image's size from its header ---------------------------------------


def _png(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    return None


def _gif(data: bytes) -> tuple[int, int] | None:
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    return None


_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg(data: bytes) -> tuple[int, int] | None:
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > len(data):
                return None
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        i += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP" or len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return int(w) & 0x3FFF, int(h) & 0x3FFF
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG, JPEG, GIF or WebP header, or None.

    Example:
        >>> import struct
        >>> png = b"\\x89PNG\\r\\n\\x1a\\n" + b"\\0\\0\\0\\rIHDR" + struct.pack(">II", 640, 480)
        >>> image_size(png)
        (640, 480)
    """
    for reader in (_png, _jpeg, _gif, _webp):
        size = reader(data)
        if size is not None and size[0] > 0 and size[1] > 0:
            return size
    return None


def _decode(payload: str) -> bytes | None:
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=False)
    except (binascii.Error, ValueError):
        return None


def _explicit_size(*holders: Mapping[str, Any]) -> tuple[int, int] | None:
    for holder in holders:
        w, h = holder.get("width"), holder.get("height")
        if (
            isinstance(w, int)
            and isinstance(h, int)
            and not isinstance(w, bool)
            and w > 0
            and h > 0
        ):
            return w, h
    return None


def block_image_tokens(block: Mapping[str, Any], model: str | None) -> ImageTokens:
    """Tokens of an image content block in any of LangChain's, OpenAI's or Anthropic's shapes."""
    holders: list[Mapping[str, Any]] = [block]
    url: Any = None
    detail: Any = block.get("detail")
    image_url = block.get("image_url")
    if isinstance(image_url, Mapping):
        holders.append(image_url)
        url = image_url.get("url")
        detail = image_url.get("detail") or detail
    elif isinstance(image_url, str):
        url = image_url
    source = block.get("source")
    payload: Any = None
    if isinstance(source, Mapping):
        holders.append(source)
        payload = source.get("data")
        url = url or source.get("url")
    payload = payload or block.get("base64") or block.get("data")
    url = url or block.get("url")
    size = _explicit_size(*holders)
    if size is None:
        raw: bytes | None = None
        if isinstance(payload, bytes):
            raw = payload
        elif isinstance(payload, str):
            raw = _decode(payload.split(",", 1)[1] if payload.startswith("data:") else payload)
        elif isinstance(url, str) and url.startswith("data:") and "," in url:
            raw = _decode(url.split(",", 1)[1])
        if raw is not None:
            size = image_size(raw)
    return image_tokens(model, detail=detail if isinstance(detail, str) else None, size=size)


def image_blocks(content: Any) -> list[Mapping[str, Any]]:
    """The image blocks in a message's content, nested ones included."""
    if isinstance(content, Mapping):
        if str(content.get("type") or "") in IMAGE_BLOCKS:
            return [content]
        return image_blocks(content.get("content"))
    if isinstance(content, list | tuple):
        return [b for item in content for b in image_blocks(item)]
    return []
