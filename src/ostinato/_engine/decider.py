"""The decider: workflow-task messages of one workflow -> one appended history batch.

It turns the messages into inbound events, replays the run, and appends the new batch with
ONE conditional put that also records the outbox and the message keys it consumed. Only then
does it send the outbox. A crash before the put loses nothing (the message comes back); a
crash after it is repaired when the consumed message comes back: its batch is found by key
and what its outbox asked for (and history has not settled since) is sent again.

A warm decider decides with the live instance of a run it decided last, fed only the new
events, when the history it reads ends at its own batch (sticky execution: `sticky.py`);
otherwise it replays the run from event 1.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from .._core import history as h
from .._core import keys, wire
from .._core.definitions import App
from .._core.errors import (
    ApplicationError,
    NonDeterminismError,
    PayloadTooLargeError,
    UnknownTypeError,
)
from .._core.index import HistoryIndex
from .._core.replay import Decision, EventData, Replayer, info_from_started, replay_history
from .activities import LocalActivities
from .cache import HistoryCache
from .deferral import ORPHAN_GRACE, RetryLater
from .dispatch import Dispatcher
from .inbound import Inbound
from .outbox import closing_outbox, decision_outbox, refuse_updates, unsettled
from .ports import NO_OBSERVER, AppendConflict, Metric, Observer, Store, Transport
from .sticky import CLOSED, CONFLICT, FAILED, LiveRun, StickyCache

log = logging.getLogger("ostinato.engine")

MAX_APPEND_RACES = 8
MAX_TASK_RETRY_DELAY = 900.0
#: What fails a workflow task (recorded, retried with back-off, fixed by deploying code):
#: the code no longer replays its history, a type or task queue is not registered, or a
#: decision is too large or not encodable. Anything else is an engine or infrastructure
#: error: it escapes, and SQS redelivers the message.
TASK_ERRORS: tuple[type[Exception], ...] = (NonDeterminismError, UnknownTypeError,
                                            PayloadTooLargeError, ApplicationError)



def _both(first: Callable[[], object], second: Callable[[], object]) -> None:
    """Run `first` and `second`, the second even when the first raised; then raise the first
    error, if any (so SQS redelivers, and the redelivery repairs what did not happen)."""
    try:
        first()
    except Exception:
        second()
        raise
    second()

class Decider:
    """Decides for the runs of one workflow id (see the module docstring)."""

    def __init__(self, app: App, store: Store, transport: Transport, dispatcher: Dispatcher,
                 local: LocalActivities, clock: Callable[[], float]) -> None:
        self.app = app
        self.store = store
        self.transport = transport
        self.dispatcher = dispatcher
        self.local = local
        self.clock = clock
        self.inbound = Inbound(store, clock)
        #: called with (workflow_id, run_id, events) after each successful append
        self.on_events: Callable[[str, str, list[h.Event]], None] | None = None
        self.history = HistoryCache()
        #: live instances of recently decided runs (sticky execution; max_runs=0: off)
        self.sticky = StickyCache()
        self.observer: Observer = NO_OBSERVER  # metrics and spans: see _observe

    def handle(self, deliveries: list[wire.Delivery]) -> None:
        """Decide once per run for these messages (all of one workflow id, in queue order)."""
        by_run: dict[str, list[wire.Delivery]] = {}
        for delivery in deliveries:
            by_run.setdefault(delivery.message.run_id, []).append(delivery)
        for run_id, group in by_run.items():
            self._decide(group[0].message.workflow_id, run_id, group)

    def _decide(self, wid: str, rid: str, deliveries: list[wire.Delivery]) -> None:
        # History is read eventually consistent first (half the RCU; batches never change, so
        # a stale read only misses the newest). A decision made on a stale read loses its
        # conditional append and reads again, strongly; a decision to do nothing is only
        # trusted after a strong read (a stale one could hide the timer a message fires).
        consistent = False
        began = time.perf_counter()
        for _ in range(MAX_APPEND_RACES):
            batches = self.history.load(self.store, rid, consistent=consistent)
            start: EventData | None = None
            if not batches:
                start = self._start_event(wid, rid, deliveries[0].sent_at)
                if start is None:
                    return
            index, consumed = self.history.take_index(rid, batches)
            # A consumed message coming back (receive count > 1) means its decider may have
            # died before sending the outbox; a duplicate *send* of an old message (receive
            # count 1) is no reason to send anything again.
            redelivered = [consumed[d.message.key] for d in deliveries
                           if d.message.key in consumed and d.receives > 1]
            self._repair(wid, rid, batches, index, redelivered)
            fresh: list[wire.Delivery] = []
            seen: set[str] = set()
            for delivery in deliveries:  # in queue order, the first copy of each message
                if delivery.message.key not in seen and delivery.message.key not in consumed:
                    seen.add(delivery.message.key)
                    fresh.append(delivery)
            last_state: dict[str, Any] = (batches[-1].state if batches
                                          else {"status": h.Status.RUNNING})
            status = last_state["status"]
            if status != h.Status.RUNNING:  # closed by another decider: drop what we kept
                self.sticky.evict(rid, CLOSED, in_hand=False)
            if status == h.Status.CONTINUED_AS_NEW:
                self._forward_to_next_run(last_state["new_run_id"], fresh)
                return
            if status != h.Status.RUNNING:
                if fresh:
                    log.info("dropping %d message(s) for closed run %s/%s", len(fresh), wid, rid)
                self.dispatcher.run(refuse_updates(rid, fresh, f"workflow is closed ({status})"))
                return
            inbound = ([start] if start else []) + self.inbound.events(index, fresh, last_state)
            beats, checks = self.inbound.callback_beats(index, fresh)
            if not inbound and not beats and not any(isinstance(d.message, wire.Wake)
                                                     for d in fresh):
                if not consistent:
                    consistent = True
                    continue
                return
            batch, live = self._next_batch(wid, rid, batches, index, inbound, fresh,
                                           last_state)
            carried: dict[str, float] = last_state.get("callback_beats") or {}
            if carried or beats:
                batch.state["callback_beats"] = {**carried, **beats}
                batch.outbox.extend(checks)
            try:
                self.store.append(rid, batch)
            except AppendConflict:
                log.info("lost an append race on %s/%s batch %d; re-reading", wid, rid,
                         batch.number)
                if live is not None:  # it decided on a history that was not the latest
                    self.sticky.evict(rid, CONFLICT)
                consistent = True
                continue
            if batch.state.get("status", h.Status.RUNNING) == h.Status.RUNNING:
                for key in batch.consumed:
                    consumed[key] = batch
                # a decided batch was folded into the index exactly (a failed one may not be)
                self.history.keep(rid, [*batches, batch], index if batch.decided else None,
                                  consumed)
                if live is not None:
                    self.sticky.keep(rid, live)
            else:
                self.history.forget(rid)
                self.sticky.evict(rid, CLOSED, in_hand=batch.decided)
            # the head and the outbox each get their try, whichever fails: an outbox that keeps
            # failing (its messages walking to the DLQ) must not leave describe and list stale,
            # nor a failing projection the outbox unsent (either is repaired on redelivery)
            _both(functools.partial(self._project, wid, rid, batches, batch),
                  functools.partial(self.dispatcher.run, batch.outbox))
            if self.on_events is not None:
                self.on_events(wid, rid, batch.to_events())
            self._observe(batches, batch, deliveries, began)
            return
        raise RetryLater(f"{MAX_APPEND_RACES} append races in a row on {wid}/{rid}")

    def _start_event(self, wid: str, rid: str, sent_at: float | None) -> EventData | None:
        head = self.store.get_head(wid)
        if head is not None and head.run_id == rid:
            attrs: dict[str, Any] = {"workflow_id": wid, "run_id": rid,
                                     "workflow_type": head.workflow_type, "args": head.args,
                                     "attempt": 1, "start_time": head.start_time}
            deadline = head.deadline
            if deadline is None and head.workflow_type in self.app.workflows:
                timeout = self.app.workflows[head.workflow_type].execution_timeout
                deadline = None if timeout is None else head.start_time + timeout
            if head.continued_from:
                attrs["continued_from"] = head.continued_from
            if head.parent:
                attrs["parent"] = head.parent
            if deadline is not None:
                attrs["execution_deadline"] = deadline
            return (h.STARTED, attrs)
        age = self.clock() - (sent_at if sent_at is not None else self.clock())
        lost_race = head is not None and head.status == h.Status.RUNNING
        if lost_race or age > ORPHAN_GRACE:
            log.info("dropping wake-up of run %s/%s that was never created", wid, rid)
            return None
        raise RetryLater(f"run {wid}/{rid} is not written yet")

    def _repair(self, wid: str, rid: str, batches: list[h.Batch], index: HistoryIndex,
                redelivered: list[h.Batch]) -> None:
        """A consumed message came back: its decider may have died before sending. Send
        again what that batch's outbox asked for and history has not settled since (so a
        late redelivery never re-runs finished work)."""
        if not redelivered:
            return
        last = batches[-1]

        def resend() -> None:
            for batch in {b.number: b for b in redelivered}.values():
                pending = unsettled(batch.outbox, index)
                log.info("re-sending %d of %d outbox entries of %s/%s batch %d", len(pending),
                         len(batch.outbox), wid, rid, batch.number)
                self.dispatcher.run(pending)

        _both(lambda: self.store.project(wid, rid, last.number, last.state,
                                         last.state.get("task_failure")), resend)

    def _forward_to_next_run(self, new_rid: str, fresh: list[wire.Delivery]) -> None:
        """Signals, cancels and updates addressed to a run that continued go to its successor
        (the caller saw the old run as current a moment ago)."""
        for delivery in fresh:
            msg = delivery.message
            if isinstance(msg, wire.FORWARDED_KINDS):
                self.transport.send_workflow_task(msg.to(new_rid, keys.forwarded(msg.key,
                                                                                 new_rid)))

    def _next_batch(self, wid: str, rid: str, batches: list[h.Batch], index: HistoryIndex,
                    inbound: list[EventData], fresh: list[wire.Delivery],
                    last_state: dict[str, Any]) -> tuple[h.Batch, LiveRun | None]:
        """The batch to append, and the live instance that decided it if it may be kept."""
        now = self.clock()
        number = batches[-1].number + 1 if batches else 1
        first = batches[-1].next_event_id if batches else 1
        consumed = [d.message.key for d in fresh]
        closing = inbound[-1][0] if inbound else None
        if closing in (h.TERMINATED, h.TIMED_OUT):  # closed by fiat: no workflow code runs
            message = (inbound[-1][1].get("reason") or "terminated" if closing == h.TERMINATED
                       else "workflow execution timeout reached")
            status = h.CLOSING[closing]
            state: dict[str, Any] = {"status": status,
                                     "custom_status": last_state.get("custom_status"),
                                     "close_time": now, "result": None,
                                     "failure": {"message": message}}
            kept = [e for e in inbound if e[0] != h.UPDATE_ACCEPTED]
            index.extend(now, kept)
            outbox = (refuse_updates(rid, fresh, f"workflow is closed ({status})")
                      + closing_outbox(rid, index, status, failure=state["failure"]))
            return h.Batch(number, first, now, False, kept, outbox, consumed, state), None
        try:
            with self.observer.span("replay"):
                decision, live = self._replay_and_decide(rid, batches, inbound, now,
                                                         last_state)
            outbox = decision_outbox(wid, rid, index, decision, now,
                                     self.transport.has_task_queue)
            if decision.continues:  # local activities are due that this task had no room for
                outbox.append(wire.SendMessage(wire.Wake(wid, rid,
                                                         keys.task_continue(rid, number))))
            batch = h.Batch(number, first, now, True, decision.events, outbox, consumed,
                            decision.state(now))
            size = h.check_batch_size(batch, self.store.max_batch_bytes)
        except TASK_ERRORS as exc:  # a failed task records its inputs and keeps the run RUNNING
            self.sticky.evict(rid, FAILED)  # its instance (if it had one) is not kept
            return self._failed_task(wid, rid, number, first, now, inbound, consumed,
                                     last_state, exc), None
        # An instance that rejected an update ran code (start-up, the validator) that the
        # batch does not record, so a replay might not reach its state: not kept.
        # Nor one whose task ran out of room for its local activities: the next task runs
        # them from a full replay, which re-plans them exactly as recorded.
        if (decision.status != h.Status.RUNNING or decision.rejected_updates
                or decision.continues):
            return batch, None
        live.advance(batch, size)
        return batch, live

    def _replay_and_decide(self, rid: str, batches: list[h.Batch], inbound: list[EventData],
                           now: float, last_state: dict[str, Any]) -> tuple[Decision, LiveRun]:
        """Decide with the run's live instance if it continues from the last batch, else
        with one replayed from the whole history."""
        history = batches if batches else [h.Batch(0, 1, now, False, [inbound[0]])]
        definition = self.app.workflow(history[0].events[0][1]["workflow_type"])
        live = self.sticky.take(rid, batches[-1], self.app, definition) if batches else None
        if live is None:
            if batches:
                replayer = replay_history(definition, batches, self.app.activities)
            else:
                replayer = Replayer(definition, info_from_started(inbound[0][1], now),
                                    self.app.activities)
            size = (sum(len(h.encode_body(b).encode()) for b in batches)
                    if self.sticky.max_runs > 0 else 0)
            live = LiveRun(replayer, self.app, definition, 0, 0, 0, 0.0, size)
        replayer = live.replayer
        replayer.instance.new_secret = lambda: secrets.token_urlsafe(24)  # 192 random bits
        decision = replayer.decide(inbound, now, self.local.budget(),
                                   last_state.get("local_retries"))
        return decision, live

    def _failed_task(self, wid: str, rid: str, number: int, first: int, now: float,
                     inbound: list[EventData], consumed: list[str],
                     last_state: dict[str, Any], exc: Exception) -> h.Batch:
        """Record the inbound events undecided and try the task again later."""
        failures = int(last_state.get("task_failures", 0)) + 1
        delay = min(2.0 ** failures, MAX_TASK_RETRY_DELAY)
        kind = "non-determinism" if isinstance(exc, NonDeterminismError) else "workflow task"
        message = f"{kind} error: {exc}"
        log.error("%s in %s/%s (attempt %d, retrying in %.0fs)", message, wid, rid, failures, delay)
        key = keys.task_retry(rid, number)
        outbox: list[wire.Outbox] = [wire.DeliverAt(now + delay, key,
                                                    wire.Envelope(wire.Wake(wid, rid, key)))]
        state = {**last_state, "status": h.Status.RUNNING, "task_failures": failures,
                 "task_failure": message}
        # Updates cannot be validated without a working replay: refuse rather than record them.
        outbox += [wire.reject_update(rid, attrs["update_id"], f"workflow task failed: {message}")
                   for etype, attrs in inbound if etype == h.UPDATE_ACCEPTED]
        kept = [e for e in inbound if e[0] != h.UPDATE_ACCEPTED]
        return h.Batch(number, first, now, False, kept, outbox, consumed, state)

    def _project(self, wid: str, rid: str, batches: list[h.Batch], batch: h.Batch) -> None:
        before = batches[-1].state if batches else {}
        after = batch.state
        if not batches or any(before.get(k) != after.get(k)
                              for k in ("status", "custom_status", "task_failure")):
            self.store.project(wid, rid, batch.number, after, after.get("task_failure"))

    # -- observing (metrics and spans: ports.Observer) -----------------------------------------
    def _observe(self, batches: list[h.Batch], batch: h.Batch, deliveries: list[wire.Delivery],
                 began: float) -> None:
        """Report one appended decision: its latency, and what it started, closed or failed."""
        first = (batches or [batch])[0].events
        kind = {"workflow_type": str(first[0][1].get("workflow_type", "")) if first else ""}
        observer = self.observer
        observer.count(Metric.WORKFLOW_TASKS, 1, **kind)
        observer.duration(Metric.WORKFLOW_TASK_DECIDE_TIME, time.perf_counter() - began, **kind)
        sent = [d.sent_at for d in deliveries if d.sent_at]
        if sent:
            observer.duration(Metric.WORKFLOW_TASK_SCHEDULE_TO_START,
                              max(0.0, self.clock() - min(sent)), **kind)
        if not batches:
            observer.count(Metric.WORKFLOWS_STARTED, 1, **kind)
        closed = Metric.WORKFLOWS_CLOSED.get(batch.state.get("status", h.Status.RUNNING))
        if closed is not None:
            observer.count(closed, 1, **kind)
        before = batches[-1].state.get("task_failures", 0) if batches else 0
        if batch.state.get("task_failures", 0) > before:  # _failed_task recorded one
            observer.count(Metric.WORKFLOW_TASK_FAILURES, 1, **kind)
            if str(batch.state.get("task_failure", "")).startswith("non-determinism"):
                observer.count(Metric.NON_DETERMINISM_ERRORS, 1, **kind)
