"""``keys``: make API keys for the sidecar and the hashes its config stores.

The config file (``server: {api_keys: [...]}``) holds only ``sha256:<salt>:<digest>``
hashes; a key itself is never written to a file by this package. ``keys new`` prints
a fresh key (give it to the client) and its config entry; ``keys hash`` reads a key
from standard input (so it stays out of the shell history) and prints its hash.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from langchain_runtime.cli.errors import CliError

__all__ = ["keys_app"]

keys_app = typer.Typer(
    help="API keys for the sidecar: make one (new), or hash one for the config (hash).",
    no_args_is_help=True,
)


@keys_app.command("hash")
def hash_(
    name: Annotated[
        str | None,
        typer.Option("--name", help="Print a whole `api_keys` entry for this key name."),
    ] = None,
) -> None:
    """Read an API key from stdin; print the hash to put in the config's `hash:`."""
    from langchain_runtime.api.server._keys import hash_key

    key = sys.stdin.readline().rstrip("\r\n")
    try:
        line = hash_key(key)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    typer.echo(_entry(name, line) if name else line)


@keys_app.command("new")
def new(
    name: Annotated[str, typer.Option("--name", help="The key's name (owner of its runs).")],
) -> None:
    """Make a fresh random key; print it (once) and its config entry."""
    from langchain_runtime.api.server._keys import hash_key, new_key

    key = new_key()
    typer.echo(f"key: {key}")
    typer.echo(_entry(name, hash_key(key)))


def _entry(name: str, line: str) -> str:
    return f'- {{name: {name}, hash: "{line}", scopes: [], admin: false}}'
