"""Warnings for people: each one line on stderr, ``autotune: warning: …``."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import TextIO

import click


def _show(  # noqa: PLR0917 (the signature of warnings.showwarning)
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    click.echo(f"autotune: warning: {message}", err=True)


class _LogLines(logging.Handler):
    """autotune's log warnings (the collector's fallback notice, say) as the same lines."""

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname.lower()
        click.echo(f"autotune: {level}: {record.getMessage()}", err=True)


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show every warning raised or logged inside as one line, without Python's source echo."""
    logger = logging.getLogger("autotune")
    handler = _LogLines(logging.WARNING)
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show
            yield
    finally:
        logger.removeHandler(handler)
