"""Warnings for people: each one line on stderr, ``autotune: warning: …``."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show every warning raised inside as one line, without Python's source-line echo."""
    with warnings.catch_warnings():
        warnings.showwarning = _show
        yield
