"""The ``langchain-runtime`` command line (extra ``cli``): run, validate, estimate,
serve, models, runs.

Install it with ``pip install 'langchain-runtime[cli]'``; run it as
``langchain-runtime`` or ``python -m langchain_runtime``.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_CLI_PACKAGES = frozenset({"typer", "rich", "click"})


def main() -> None:
    """Entry point of the ``langchain-runtime`` script."""
    try:
        from langchain_runtime.cli.app import app
    except ImportError as exc:
        if exc.name is None or exc.name.split(".", 1)[0] not in _CLI_PACKAGES:
            raise
        sys.stderr.write(
            f"error: the command line needs the 'cli' extra ({exc.name} is not installed): "
            "pip install 'langchain-runtime[cli]'\n"
        )
        raise SystemExit(2) from None
    app()
