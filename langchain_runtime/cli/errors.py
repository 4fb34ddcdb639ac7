"""Where errors become an exit code and one line on stderr: the CLI's single boundary.

Commands raise; they never pick exit codes for errors or print error messages
themselves. :func:`report` is called once, by the root command group, for anything
a command raises:

==========================================  =====  ==================================
error                                       code   meaning
==========================================  =====  ==================================
``ConfigurationError`` (bad file, field),    2     bad usage or invalid input
``GraphValidationError``,
``InvalidInputError``, ``CliError`` (usage)
other runtime errors (budget, run failure),  1     the work failed
anything unexpected
``KeyboardInterrupt``                        130   interrupted (128 + SIGINT)
==========================================  =====  ==================================

Without ``--debug`` the user sees one line (several for a configuration file with
several problems, one per problem), never a traceback.
"""

from __future__ import annotations

import sys
import traceback

from langchain_runtime.errors import (
    ConfigurationError,
    GraphValidationError,
    InvalidInputError,
    LangChainRuntimeError,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "exit_code_for",
    "is_framework_exception",
    "message_for",
    "report",
]

EXIT_OK = 0
#: The run failed, stopped on its budget, or a remote call failed.
EXIT_FAILED = 1
#: Bad usage or invalid input: an unreadable or invalid file, a bad ``--input``.
EXIT_USAGE = 2
#: Interrupted with Ctrl-C (the shell convention, 128 + SIGINT).
EXIT_INTERRUPTED = 130

_USAGE_ERRORS = (ConfigurationError, GraphValidationError, InvalidInputError)
#: Exceptions of the CLI library itself (usage errors, ``Exit``) are its to handle.
_FRAMEWORK_MODULES = frozenset({"typer", "click"})


class CliError(Exception):
    """An error the CLI detected itself, with the exit code it warrants.

    Args:
        message: One line saying what is wrong and, when it helps, what to do.
        exit_code: :data:`EXIT_USAGE` (default) or :data:`EXIT_FAILED`.
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def is_framework_exception(exc: BaseException) -> bool:
    """True for the CLI library's own exceptions (usage errors, ``Exit``, ``Abort``)."""
    return type(exc).__module__.split(".", 1)[0] in _FRAMEWORK_MODULES


def exit_code_for(exc: BaseException) -> int:
    """The exit code for ``exc`` (see the table in this module's docstring)."""
    if isinstance(exc, CliError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, _USAGE_ERRORS):
        return EXIT_USAGE
    return EXIT_FAILED


def _expected(exc: BaseException) -> bool:
    # ImportError: a missing optional dependency, whose message says what to install.
    return isinstance(exc, CliError | LangChainRuntimeError | KeyboardInterrupt | ImportError)


def message_for(exc: BaseException) -> str:
    """What the user reads: the error's own message, or its type for a bare one."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).strip()
    if _expected(exc):
        return text or type(exc).__name__
    # Not one of ours: say what it is, and how to see more.
    name = type(exc).__name__
    return f"{name}: {text} (run with --debug for the traceback)" if text else name


def report(exc: BaseException, *, debug: bool = False) -> int:
    """Write ``exc`` to stderr (its traceback too with ``debug``); return its exit code."""
    if debug:
        sys.stderr.write("".join(traceback.format_exception(exc)))
    sys.stderr.write(f"error: {message_for(exc)}\n")
    sys.stderr.flush()
    return exit_code_for(exc)
