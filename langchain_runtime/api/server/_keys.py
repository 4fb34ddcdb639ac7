"""API keys: how they are hashed, checked, and who a request is (no web framework here).

A key is stored as ``sha256:<salt>:<digest>``, ``digest = SHA-256(salt || key)`` with a
random 16-byte salt. Why not PBKDF2 or scrypt: those slow a guess down to protect
*low-entropy* secrets (passwords) after a database leak; an API key made by
:func:`new_key` holds 256 random bits, so no amount of guessing finds it from its hash,
and a slow KDF would only cost every request tens of milliseconds. The salt keeps two
servers (or two keys) from sharing a digest. :func:`hash_key` refuses short keys, so
that argument holds for every key it hashes.

Checking a request hashes the presented key with each key's salt and compares the
digests with :func:`hmac.compare_digest` (constant time), every key, every time.

Example:
    >>> line = hash_key("k" * 40)
    >>> line.startswith("sha256:"), len(line)
    (True, 104)
    >>> ring = KeyRing([KeyEntry("ci", line, ("team:x",), False)])
    >>> ring.identify("k" * 40).name, ring.identify("wrong" * 8) is None
    ('ci', True)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["MIN_KEY_LENGTH", "KeyEntry", "KeyRing", "Principal", "hash_key", "new_key"]

#: Shorter keys are refused: a salted SHA-256 is safe only for high-entropy keys.
MIN_KEY_LENGTH = 24


def new_key() -> str:
    """A fresh API key: 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def _digest(salt: bytes, key: bytes) -> bytes:
    return hashlib.sha256(salt + key).digest()


def hash_key(key: str, *, salt: bytes | None = None) -> str:
    """The stored form of ``key``: ``sha256:<salt hex>:<digest hex>``.

    Raises:
        ValueError: The key is shorter than :data:`MIN_KEY_LENGTH` or holds spaces.
    """
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(
            f"an API key must be at least {MIN_KEY_LENGTH} characters (it is {len(key)}); "
            "make one with `langchain-runtime keys new`"
        )
    if any(c.isspace() for c in key) or not key.isprintable():
        raise ValueError("an API key may not hold spaces or control characters")
    salt = secrets.token_bytes(16) if salt is None else salt
    return f"sha256:{salt.hex()}:{_digest(salt, key.encode()).hex()}"


@dataclass(frozen=True)
class Principal:
    """Who a request is: the key's name, its budget scopes, and whether it is admin.

    ``None`` (no api keys configured: the single ``--token`` mode, or no auth) means
    the one user of the server, who sees everything.
    """

    name: str
    scopes: tuple[str, ...] = ()
    admin: bool = False

    def may_use(self, scope: str) -> bool:
        """Whether this key may read or set ``scope``'s budget."""
        return self.admin or scope in self.scopes


@dataclass(frozen=True)
class KeyEntry:
    """A configured key: its name, stored hash, scopes and admin flag."""

    name: str
    hash: str
    scopes: tuple[str, ...] = ()
    admin: bool = False


class KeyRing:
    """The server's keys; :meth:`identify` finds the one a request presents."""

    def __init__(self, entries: Iterable[KeyEntry]) -> None:
        self._entries: list[tuple[bytes, bytes, Principal]] = []
        for entry in entries:
            _, salt, digest = entry.hash.split(":")
            principal = Principal(entry.name, tuple(entry.scopes), entry.admin)
            self._entries.append((bytes.fromhex(salt), bytes.fromhex(digest), principal))
        if not self._entries:
            raise ValueError("a key ring needs at least one key")

    @classmethod
    def from_specs(cls, specs: Sequence[object]) -> KeyRing:
        """From the config's ``ApiKeySpec`` entries (``name/hash/scopes/admin``)."""
        return cls(
            KeyEntry(
                getattr(s, "name"),  # noqa: B009 - duck-typed config entries
                getattr(s, "hash"),  # noqa: B009
                tuple(getattr(s, "scopes", ())),
                bool(getattr(s, "admin", False)),
            )
            for s in specs
        )

    def __len__(self) -> int:
        return len(self._entries)

    def identify(self, key: str | bytes) -> Principal | None:
        """The key's principal, or None; every stored key is compared (constant time)."""
        raw = key.encode() if isinstance(key, str) else key
        found: Principal | None = None
        for salt, digest, principal in self._entries:
            if hmac.compare_digest(_digest(salt, raw), digest) and found is None:
                found = principal
        return found

    def scopes(self) -> tuple[str, ...]:
        """Every scope some key carries (sorted, once each)."""
        return tuple(sorted({s for _, _, p in self._entries for s in p.scopes}))
