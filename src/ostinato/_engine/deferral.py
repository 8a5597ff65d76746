"""Deferring a workflow-task message that cannot be handled yet."""

from __future__ import annotations

#: A start message whose run is not (yet) in the table is retried this long, then dropped:
#: the client sends the wake-up before it writes the run, so a failed start leaves an orphan.
#: A callback wake-up whose outcome is not written yet is waited for as long.
ORPHAN_GRACE = 60.0


class RetryLater(Exception):
    """The message cannot be handled yet; let SQS deliver it again."""
