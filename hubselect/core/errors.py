"""The one error type a user sees: a single line naming the input and the fix."""

from __future__ import annotations


class HubselectError(Exception):
    """A user-facing error: bad input, unreachable service, unusable data.

    The message is one line that names the offending input and says how to fix it. The CLI
    prints it without a traceback and exits with status 2.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class TaskRejected(HubselectError):
    """A candidate task that cannot be used; the message is the reason recorded in the catalog."""
