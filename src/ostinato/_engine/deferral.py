"""Deferring a workflow-task message that cannot be handled yet."""

from __future__ import annotations

#: A start message whose run is not (yet) in the table is retried this long, then dropped:
#: the client sends the wake-up before it writes the run, so a failed start leaves an orphan.
#: A callback wake-up whose outcome is not written yet is waited for as long.
ORPHAN_GRACE = 60.0

#: A deferred message is hidden this long after its first receive, twice as long after each
#: further one, and never longer than MAX_DEFERRAL (see `deferral_delay`).
FIRST_DEFERRAL = 2
MAX_DEFERRAL = 30


class RetryLater(Exception):
    """The message cannot be handled yet; let SQS deliver it again."""


def deferral_delay(receive_count: int) -> int:
    """Seconds to hide a deferred message that SQS has delivered `receive_count` times.

    2, 4, 8, 16, then 30 s for every later receive. Short at first, because the usual cause
    is a race that ends within milliseconds (the client sends the wake-up before it writes the
    run); capped, because while a FIFO message is hidden its whole workflow waits behind it.

    The arithmetic against the workflow-task queue's redrive policy (template.yaml,
    WorkflowTaskQueue `maxReceiveCount: 10`): SQS moves a message to the DLQ instead of
    delivering it an 11th time, so it is handled at most 10 times, and receive k comes at
    least the sum of the first k-1 delays after the first (handling time only adds to it):

        receive    1  2  3   4   5   6   7    8    9    10
        at >= s    0  2  6  14  30  60  90  120  150   180

    An orphan (or an unclaimed callback) is dropped at the first receive older than
    ORPHAN_GRACE (60 s): the 7th at the latest, with three more receives and 90 s to spare
    before the DLQ, whose window (180 s) is three times the grace period.
    `tests/test_deferral.py` recomputes this from the template's `maxReceiveCount`.
    """
    exponent = max(0, receive_count - 1)
    if exponent >= 8:  # 2 * 2**8 is far past the cap already
        return MAX_DEFERRAL
    return min(FIRST_DEFERRAL * 2 ** exponent, MAX_DEFERRAL)
