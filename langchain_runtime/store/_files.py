"""Opening a store file: refusing a damaged or foreign one, and one server per file.

The one-server lock is an OS lock (``flock``) on the database file itself, so a
symlink or a hard link to the same file is the same lock. It is taken on a file
descriptor this module keeps open for as long as any store of this process has the
file open: SQLite's own locks are POSIX locks, which the kernel drops for the whole
process when *any* descriptor of the file is closed, so that descriptor is closed
only after the last connection to the file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from langchain_runtime.errors import StoreError

__all__ = ["FileHold", "check_file", "hold", "release"]

_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_file(path: Path) -> bool:
    """Refuse a file that cannot be a store before SQLite opens it; True if it exists.

    Raises:
        StoreError: ``path`` is a directory, empty (0 bytes: a store is never empty,
            so it was truncated), or not an SQLite database.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreError(f"run store {path} cannot be read: {exc.strerror}") from None
    if path.is_dir():
        raise StoreError(f"run store {path} is a directory, not a store file")
    if size == 0:
        raise StoreError(
            f"run store {path} is empty (0 bytes): it was truncated or is not a store; "
            "restore it, or delete it to start a new store"
        )
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"run store {path} cannot be read: {exc.strerror}") from None
    if magic != _SQLITE_MAGIC:
        raise StoreError(f"run store {path} is not an SQLite database")
    return True


def quick_check(db: sqlite3.Connection, path: Path) -> None:
    """``PRAGMA quick_check``; raise a one-line :class:`StoreError` on damage."""
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise damaged(path, str(exc)) from None
    if rows != [("ok",)]:
        first = str(rows[0][0]).replace("\n", " ") if rows else "no answer"
        raise damaged(path, f"quick_check: {first}")


def damaged(path: Path | str, why: str) -> StoreError:
    return StoreError(
        f"run store {path} is damaged ({why}); restore it from a backup, or move it "
        "away to start a new store"
    )


@dataclass
class FileHold:
    """This process's descriptor of one store file (by inode) and who uses it."""

    key: tuple[int, int]
    fd: int
    users: int = 0
    exclusive: bool = False


_lock = threading.Lock()
_HOLDS: dict[tuple[int, int], FileHold] = {}


def hold(path: Path, *, exclusive: bool) -> FileHold:
    """Count one more user of ``path``'s file; with ``exclusive``, claim it for this store.

    Raises:
        StoreError: ``exclusive`` and the file (by inode, whatever the path) is claimed
            by another store of this process or by another process.
    """
    st = os.stat(path)
    key = (st.st_dev, st.st_ino)
    with _lock:
        held = _HOLDS.get(key)
        if held is None:
            held = FileHold(key, os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
            _HOLDS[key] = held
        if exclusive:
            if held.exclusive or not _flock(held.fd):
                if held.users == 0:
                    os.close(held.fd)
                    del _HOLDS[key]
                raise StoreError(
                    f"run store {path} is in use by another server; give each server its "
                    "own store file (--store)"
                )
            held.exclusive = True
        held.users += 1
        return held


def release(held: FileHold, *, exclusive: bool) -> None:
    """One user less (call after closing its connection); the last one closes the fd."""
    with _lock:
        if exclusive and held.exclusive:
            _unflock(held.fd)
            held.exclusive = False
        held.users -= 1
        if held.users <= 0 and _HOLDS.get(held.key) is held:
            del _HOLDS[held.key]
            os.close(held.fd)


def _flock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unflock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return
    fcntl.flock(fd, fcntl.LOCK_UN)
