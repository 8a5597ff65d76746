"""One pass over a run's history: what is open, what is settled, how the run began.

Built once per decision and shared by inbound translation, the outbox, crash repair and the
client, instead of each scanning history for the set it needs. `extend` folds in the events
of a batch being decided, so the outbox sees the state after the decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import history as h

#: The event that settles each kind of pending thing, by kind name.
SETTLING: dict[str, str] = {
    h.ACTIVITY_COMPLETED: "activity", h.ACTIVITY_FAILED: "activity",
    h.ACTIVITY_TIMED_OUT: "activity", h.ACTIVITY_CANCELED: "activity",
    h.TIMER_FIRED: "timer", h.TIMER_CANCELED: "timer",
    h.CALLBACK_COMPLETED: "callback", h.CALLBACK_FAILED: "callback",
    h.CALLBACK_TIMED_OUT: "callback", h.CHILD_COMPLETED: "child", h.CHILD_FAILED: "child"}


@dataclass
class OpenCallback:
    created_at: float  # the time of the batch that created it
    attrs: dict[str, Any]

    @property
    def heartbeat_timeout(self) -> float | None:
        value = self.attrs.get("heartbeat_timeout")
        return float(value) if value else None


@dataclass
class HistoryIndex:
    """What a run's history says is open and settled (see the module docstring)."""

    started: dict[str, Any] = field(default_factory=dict)
    activities: set[int] = field(default_factory=set)
    #: open timers: seq -> (time it was started, time it fires)
    timers: dict[int, tuple[float, float]] = field(default_factory=dict)
    callbacks: dict[int, OpenCallback] = field(default_factory=dict)
    #: every child ever initiated (seq -> its initiated attributes), open or not
    children: dict[int, dict[str, Any]] = field(default_factory=dict)
    open_children: set[int] = field(default_factory=set)
    open_updates: set[str] = field(default_factory=set)
    cancel_requested: bool = False
    #: (kind, seq) of everything history closed: "activity" | "timer" | "callback" | "child"
    settled: set[tuple[str, int]] = field(default_factory=set)
    #: the callback secrets, by seq, of every callback ever created
    callback_secrets: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, batches: Iterable[h.Batch]) -> HistoryIndex:
        index = cls()
        for batch in batches:
            index.extend(batch.time, batch.events)
        return index

    def extend(self, time: float, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Fold in events recorded at `time`."""
        for etype, attrs in events:
            if etype in SETTLING:
                self.settled.add((SETTLING[etype], attrs["seq"]))
            match etype:
                case h.STARTED:
                    self.started = attrs
                case h.ACTIVITY_SCHEDULED:
                    self.activities.add(attrs["seq"])
                case (h.ACTIVITY_COMPLETED | h.ACTIVITY_FAILED | h.ACTIVITY_TIMED_OUT
                      | h.ACTIVITY_CANCELED):
                    self.activities.discard(attrs["seq"])
                case h.TIMER_STARTED:
                    self.timers[attrs["seq"]] = (time, attrs["fire_at"])
                case h.TIMER_FIRED | h.TIMER_CANCELED:
                    self.timers.pop(attrs["seq"], None)
                case h.CALLBACK_CREATED:
                    self.callbacks[attrs["seq"]] = OpenCallback(time, attrs)
                    self.callback_secrets[attrs["seq"]] = attrs.get("secret", "")
                case h.CALLBACK_COMPLETED | h.CALLBACK_FAILED | h.CALLBACK_TIMED_OUT:
                    self.callbacks.pop(attrs["seq"], None)
                case h.CHILD_INITIATED:
                    self.children[attrs["seq"]] = attrs
                    self.open_children.add(attrs["seq"])
                case h.CHILD_COMPLETED | h.CHILD_FAILED:
                    self.open_children.discard(attrs["seq"])
                case h.UPDATE_ACCEPTED:
                    self.open_updates.add(attrs["update_id"])
                case h.UPDATE_COMPLETED:
                    self.open_updates.discard(attrs["update_id"])
                case h.CANCEL_REQUESTED:
                    self.cancel_requested = True

    def is_settled(self, kind: str, seq: int) -> bool:
        return (kind, seq) in self.settled
