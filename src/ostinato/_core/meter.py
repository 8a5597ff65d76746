"""How long a run's history is at the current point of replay, and when to continue as new.

`ctx.info.history_length` and `ctx.info.is_continue_as_new_suggested()` read this, so both
must be the same on every replay of the same point: the meter counts what replay itself
walks through, never what the store happens to hold when a task runs.

The threshold is Temporal's (its server suggests continue-as-new at 4,096 events or 4 MiB of
history). In ostinato it matters more, not less: a decision replays the whole run (about
6 us/event: 25 ms at 4,096 events, 0.3 s at 50,000; `python -m benchmarks.run --only
replay`), and a decider new to a run reads all of it (about 0.03 RCU per event, cold; see
docs/capacity.md). Past the threshold each step costs several times what it did at the start.
"""

from __future__ import annotations

from typing import Any

from .serde import dumps

#: `is_continue_as_new_suggested()` is true from this many events on ...
SUGGEST_CONTINUE_AS_NEW_EVENTS = 4096
#: ... or from this many bytes of event JSON (as stored, before compression).
SUGGEST_CONTINUE_AS_NEW_BYTES = 4 * 1024 * 1024

Event = tuple[str, dict[str, Any]]


class HistoryMeter:
    """The events history holds at the current point: every event of the workflow tasks
    replayed so far, then the events the current task applied (inbound events, local
    activity markers) up to now. Sizes are computed only when asked for, once per event."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._settled = 0  # events of the finished tasks (a prefix of _events)
        self._sizes = [0]  # _sizes[i]: bytes of _events[:i], known for i < len(_sizes)

    @property
    def length(self) -> int:
        return len(self._events)

    def applied(self, event: Event) -> None:
        """The current task applied `event`."""
        self._events.append(event)

    def settle(self, events: list[Event]) -> None:
        """The current task is replayed: history now holds all of its `events`."""
        del self._events[self._settled:]
        del self._sizes[self._settled + 1:]
        self._events.extend(events)
        self._settled = len(self._events)

    def size(self, length: int | None = None) -> int:
        """Bytes of JSON of the first `length` events (default: all of them)."""
        upto = min(self.length if length is None else length, self.length)
        sizes, events = self._sizes, self._events
        while len(sizes) <= upto:
            sizes.append(sizes[-1] + len(dumps(events[len(sizes) - 1]).encode()))
        return sizes[upto]


def continue_as_new_suggested(length: int, size: int) -> bool:
    return length >= SUGGEST_CONTINUE_AS_NEW_EVENTS or size >= SUGGEST_CONTINUE_AS_NEW_BYTES
