"""Configuration errors at start-up as a person can act on them: one line per problem, naming the setting
or file, what is wrong and what would be accepted, then a non-zero exit, with no traceback (unless
LOG_LEVEL=DEBUG, when the exception is raised as it is, for whoever debugs the service itself)."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from core.exceptions import ConfigurationError

EXIT_CODE = 78
"""EX_CONFIG (sysexits.h): a configuration error, which restarting will not cure."""
MAX_INPUT_CHARS = 80


def _given(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_INPUT_CHARS else f"{text[:MAX_INPUT_CHARS]}..."


def settings_problems(exc: ValidationError) -> list[str]:
    """One line per refused setting: its environment name, what was given, and what is accepted."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        if not loc:  # a check across settings: its message names them, one problem a line after its heading
            heading, *items = message.splitlines()
            lines += [item.lstrip("- ") for item in items if item.strip()] or [heading]
            continue
        name = loc[0].upper()
        field = f" ({'.'.join(loc[1:])})" if len(loc) > 1 else ""
        given = f" {_given(error['input'])}" if error["type"] != "missing" else ""
        lines.append(f"{name}{field}: refused{given}: {message}")
    return lines


def problems_of(exc: BaseException) -> list[str] | None:
    """The lines to print for a configuration error; None for any other exception."""
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return settings_problems(exc)
    if isinstance(exc, ConfigurationError):
        return [line for line in exc.message.splitlines() if line.strip()]
    return None


@contextmanager
def exit_on_configuration_error() -> Iterator[None]:
    """Around start-up: a configuration error is printed to stderr, one line per problem, and the process
    exits with EXIT_CODE; any other exception (or any at all with LOG_LEVEL=DEBUG) propagates."""
    try:
        yield
    except (ValidationError, ConfigurationError) as exc:
        problems = problems_of(exc)
        if problems is None or os.environ.get("LOG_LEVEL", "").upper() == "DEBUG":
            raise
        for line in problems:
            sys.stderr.write(f"configuration error: {line}\n")
        raise SystemExit(EXIT_CODE) from None
