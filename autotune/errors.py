"""Errors meant for people.

A :class:`UserError` is a person's mistake (a wrong PID, a bad file, a wrong flag, a missing
privilege). The CLI prints its message as one line and exits with status 2; it never shows a
traceback for one.
"""


class UserError(Exception):
    """A mistake in what a person asked for; reported in one line, exit status 2."""

    exit_code = 2


class NotPermitted(UserError):
    """The operation needs a privilege the process lacks (root, CAP_BPF, CAP_SYS_ADMIN)."""
