"""The time an SQS-triggered Lambda invocation has left, and which records it may still start.

Lambda stops an invocation at its timeout wherever it is. For an SQS batch that is the worst
place: every record comes back after the visibility timeout, with its receive count raised,
the finished ones included, and an activity that comes back that way looks like one whose
worker died. So each handler asks `InvocationBudget.admits` before it starts a record (the
decider: before each workflow group), and stops at the first one that might not finish:

- the first record of a batch always starts (a fresh invocation is the most time any record
  can ever get, so waiting would not help it);
- a later one starts only if the time left covers what it may take (its own bound, e.g. an
  activity's start_to_close_timeout, capped at the whole invocation; without a bound,
  `UNBOUNDED_SHARE` of the invocation) plus `SAFETY_MARGIN`, kept for handing the rest back;
- once one record is refused, so is every later one (the batch stops; FIFO order holds).

How the refused ("untouched") records go back is the handler's business (see
`ostinato.lambda_handlers`): re-sent as fresh messages on standard queues, made visible
again at once on the FIFO queue.
"""

from __future__ import annotations

import math
from typing import Any

#: Seconds kept free at the end of an invocation to hand untouched records back and return.
SAFETY_MARGIN = 5.0
#: The share of an invocation a record with no bound of its own is assumed to need.
UNBOUNDED_SHARE = 0.25


class InvocationBudget:
    """One invocation's remaining time, read from its Lambda context (see the module doc)."""

    def __init__(self, context: Any) -> None:
        self._remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        self.total = self.remaining()
        self.started = 0
        self.exhausted = False

    def remaining(self) -> float:
        """Seconds until Lambda stops the invocation (infinite without a Lambda context)."""
        if self._remaining_ms is None:
            return math.inf
        return max(0.0, self._remaining_ms() / 1000)

    def admits(self, need: float | None) -> bool:
        """May a record that takes up to `need` seconds (None: no bound of its own) start?"""
        if self.exhausted:
            return False
        if self.started:
            expected = self.total * UNBOUNDED_SHARE if need is None else min(need, self.total)
            if self.remaining() < expected + SAFETY_MARGIN:
                self.exhausted = True
                return False
        self.started += 1
        return True

    def time_left(self) -> float | None:
        """Seconds a record started now may run before the invocation must wrap up (None
        without a Lambda context)."""
        if self._remaining_ms is None:
            return None
        return max(0.0, self.remaining() - SAFETY_MARGIN)
