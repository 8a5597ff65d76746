"""Inbound translation: workflow-task messages -> the history events they add.

A message history already settled adds nothing (a late timer, a second activity report), so
redelivery and duplicates are harmless. Callback outcomes are read from their claim item.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core import history as h
from .._core import keys, wire
from .._core.index import HistoryIndex
from .._core.replay import EventData
from .._core.serde import to_failure
from .deferral import ORPHAN_GRACE, RetryLater
from .outbox import at
from .ports import Store


class Inbound:
    """Turns the fresh messages of one decision into inbound events."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    def events(self, index: HistoryIndex, fresh: list[wire.Delivery],
               last_state: dict[str, Any]) -> list[EventData]:
        """New inbound events from messages, without the ones history already settled.

        Consumes what it settles from `index`'s open sets, so a second copy in the same
        decision adds nothing either.
        """
        events: list[EventData] = []
        for delivery in fresh:
            msg = delivery.message
            event = self._event(index, delivery, msg, last_state)
            if event is None:
                continue
            events.append(event)
            if event[0] in (h.TERMINATED, h.TIMED_OUT):
                break  # closed by fiat: nothing after it counts
        return events

    def _event(self, index: HistoryIndex, delivery: wire.Delivery, msg: wire.Message,
               last_state: dict[str, Any]) -> EventData | None:
        match msg:
            case wire.ActivityOutcome(seq=seq) if seq in index.activities:
                index.activities.discard(seq)
                if msg.cancelled:
                    return h.ACTIVITY_CANCELED, {"seq": seq, "attempt": msg.attempt}
                if msg.failure is not None:
                    etype = h.ACTIVITY_TIMED_OUT if msg.timed_out else h.ACTIVITY_FAILED
                    return etype, {"seq": seq, "attempt": msg.attempt, "failure": msg.failure}
                return h.ACTIVITY_COMPLETED, {"seq": seq, "attempt": msg.attempt,
                                              "result": msg.result}
            case wire.ActivityTimeout(seq=seq) if seq in index.activities:
                index.activities.discard(seq)
                failure = to_failure(TimeoutError("activity exceeded its "
                                                  "schedule_to_close_timeout"))
                failure.pop("stack", None)
                return h.ACTIVITY_TIMED_OUT, {"seq": seq, "failure": failure,
                                              "timeout_type": "ScheduleToClose"}
            case wire.TimerFired(seq=seq) if seq in index.timers:
                index.timers.pop(seq)
                return h.TIMER_FIRED, {"seq": seq}
            case wire.Signal():
                return h.SIGNALED, {"name": msg.name, "args": msg.args}
            case wire.Cancel() if not index.cancel_requested:
                index.cancel_requested = True
                return h.CANCEL_REQUESTED, {"reason": msg.reason}
            case wire.Terminate():
                return h.TERMINATED, {"reason": msg.reason}
            case wire.WorkflowTimeout():
                return h.TIMED_OUT, {}
            case wire.ChildOutcome(seq=seq) if seq in index.open_children:
                index.open_children.discard(seq)
                if msg.status == h.Status.COMPLETED:
                    return h.CHILD_COMPLETED, {"seq": seq, "workflow_id": msg.child_workflow_id,
                                               "result": msg.result}
                return h.CHILD_FAILED, {"seq": seq, "workflow_id": msg.child_workflow_id,
                                        "status": msg.status, "failure": msg.failure}
            case wire.Update():
                return h.UPDATE_ACCEPTED, {"update_id": msg.update_id, "name": msg.name,
                                           "args": msg.args}
            case wire.CallbackSettled(seq=seq) if seq in index.callbacks:
                claim = self.store.callback_claim(msg.run_id, seq)
                if claim is None:
                    sent = delivery.sent_at if delivery.sent_at is not None else msg.sent_at
                    if self.clock() - sent < ORPHAN_GRACE:
                        raise RetryLater(f"callback {seq} outcome not written yet")
                    return None  # its completer died before recording an outcome
                index.callbacks.pop(seq)
                if "failure" in claim:
                    return h.CALLBACK_FAILED, {"seq": seq, "failure": claim["failure"]}
                return h.CALLBACK_COMPLETED, {"seq": seq, "result": claim.get("result")}
            case wire.CallbackTimeout(seq=seq) if seq in index.callbacks:
                index.callbacks.pop(seq)
                return h.CALLBACK_TIMED_OUT, {"seq": seq, "timeout_type": "timeout"}
            case wire.CallbackHeartbeatCheck(seq=seq) if seq in index.callbacks:
                callback = index.callbacks[seq]
                beats = last_state.get("callback_beats") or {}
                last = beats.get(str(seq), callback.created_at)
                if self.clock() - last >= (callback.heartbeat_timeout or 0.0) - 0.5:
                    index.callbacks.pop(seq)
                    return h.CALLBACK_TIMED_OUT, {"seq": seq, "timeout_type": "heartbeat"}
        return None

    def callback_beats(self, index: HistoryIndex, fresh: list[wire.Delivery],
                       ) -> tuple[dict[str, float], list[wire.Outbox]]:
        """Heartbeats of open callbacks: their times, and the checks that follow them."""
        limits = {seq: cb.heartbeat_timeout for seq, cb in index.callbacks.items()
                  if cb.heartbeat_timeout}
        seqs = {d.message.seq for d in fresh
                if isinstance(d.message, wire.CallbackHeartbeat) and d.message.seq in limits}
        if not seqs:
            return {}, []
        now = self.clock()
        run = fresh[0].message
        checks: list[wire.Outbox] = [
            at(now + limits[seq], wire.CallbackHeartbeatCheck(
                run.workflow_id, run.run_id,
                keys.callback_heartbeat_check(run.run_id, seq, now), seq=seq))
            for seq in sorted(seqs)]
        return {str(seq): now for seq in seqs}, checks
