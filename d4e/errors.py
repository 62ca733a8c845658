"""User-facing errors.

Anything a user can cause (bad input file, missing checkpoint, unwritable
output, ...) raises a :class:`D4EError`. The CLI turns it into one line on
stderr and exit status 2, never a traceback.
"""


class D4EError(Exception):
    """An error caused by the user's input or environment (exit status 2)."""

    exit_code = 2


class InputError(D4EError):
    """An input file is missing, unreadable or unsuitable."""


class OutputError(D4EError):
    """An output cannot be written (permissions, full disk, same as input)."""


class CheckpointError(D4EError):
    """A checkpoint is missing, corrupt, of another kind or another format version."""


class NoFaceError(InputError):
    """No usable face was found where one is required."""
