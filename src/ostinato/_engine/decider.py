"""The engine: workflow tasks (the decider), activity tasks and due deliveries.

The decider consumes workflow-task messages of one workflow, turns them into inbound events,
replays the run, and appends the new batch with ONE conditional put that also records the
outbox and the message keys it consumed. Only then does it send the outbox. A crash before the
put loses nothing (the message comes back); a crash after it is repaired when the consumed
message comes back: its batch is found by key and its outbox sent again.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .._aws.store import AppendConflict, Head, StartConflict, Store, check_batch_size
from .._aws.transport import MAX_SQS_DELAY, Transport
from .._core import history as h
from .._core.activity import ActivityContext, ActivityInfo, call_activity
from .._core.definitions import ActivityOptions, App
from .._core.errors import NonDeterminismError, PayloadTooLargeError, UnknownTypeError
from .._core.replay import Decision, LocalOutcome, Replayer, info_from_started, replay_history
from .._core.retry import backoff, should_retry
from .._core.serde import check_payload, to_failure

log = logging.getLogger("ostinato.engine")

#: A start message whose run is not (yet) in the table is retried this long, then dropped:
#: the client sends the wake-up before it writes the run, so a failed start leaves an orphan.
ORPHAN_GRACE = 60.0
MAX_APPEND_RACES = 8
MAX_TASK_RETRY_DELAY = 900.0


class HistoryCache:
    """Batches of recently decided runs, kept by a warm container (Lambda reuses them).

    Batches never change once written, so a cached prefix is always true; it may only be
    short. The decider reads just the batches after it, and if another decider appended in
    between, its own conditional append loses and it reads again. Reads per decision drop from
    the whole history to what is new.
    """

    def __init__(self, max_runs: int = 256) -> None:
        self._runs: OrderedDict[str, list[h.Batch]] = OrderedDict()
        self._max = max_runs
        self._lock = threading.Lock()

    def load(self, store: Store, run_id: str) -> list[h.Batch]:
        with self._lock:
            cached = list(self._runs.get(run_id, ()))
        after = cached[-1].number if cached else 0
        batches = cached + store.load_batches(run_id, after=after)
        self.keep(run_id, batches)
        return batches

    def keep(self, run_id: str, batches: list[h.Batch]) -> None:
        with self._lock:
            self._runs[run_id] = batches
            self._runs.move_to_end(run_id)
            while len(self._runs) > self._max:
                self._runs.popitem(last=False)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)


class RetryLater(Exception):
    """The message cannot be handled yet; let SQS deliver it again."""


class Engine:
    """Handles the three kinds of work (see the module docstring)."""

    def __init__(self, app: App, store: Store, transport: Transport,
                 clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.store = store
        self.transport = transport
        self.clock = clock
        #: called with (workflow_id, run_id, events) after each successful append
        self.on_events: Callable[[str, str, list[h.Event]], None] | None = None
        self.history = HistoryCache()

    # ================================================================== workflow tasks
    def handle_workflow_messages(self, messages: list[dict[str, Any]],
                                 sent_at: float | None = None) -> None:
        """Decide once for these messages (all of one workflow id, in queue order)."""
        by_run: dict[str, list[dict[str, Any]]] = {}
        for msg in messages:
            by_run.setdefault(msg["rid"], []).append(msg)
        for run_id, msgs in by_run.items():
            self._decide(msgs[0]["wid"], run_id, msgs, sent_at)

    def _decide(self, wid: str, rid: str, msgs: list[dict[str, Any]],
                sent_at: float | None) -> None:
        for _ in range(MAX_APPEND_RACES):
            batches = self.history.load(self.store, rid)
            start: tuple[str, dict[str, Any]] | None = None
            if not batches:
                start = self._start_event(wid, rid, sent_at)
                if start is None:
                    return
            consumed = {key: batch for batch in batches for key in batch.consumed}
            # A consumed message coming back (receive count > 1) means its decider may have
            # died before sending the outbox; a duplicate *send* of an old message (receive
            # count 1) is no reason to send anything again.
            redelivered = [consumed[m["mk"]] for m in msgs
                           if m["mk"] in consumed and m.get("_receives", 2) > 1]
            self._repair(wid, rid, batches, redelivered)
            fresh, seen = [], set(consumed)
            for msg in msgs:  # in queue order, the first copy of each message
                if msg["mk"] not in seen:
                    seen.add(msg["mk"])
                    fresh.append(msg)
            last_state: dict[str, Any] = batches[-1].state if batches else {"status": h.RUNNING}
            if last_state["status"] == "CONTINUED_AS_NEW":
                self._forward_to_next_run(last_state["new_run_id"], fresh)
                return
            if last_state["status"] != h.RUNNING:
                if fresh:
                    log.info("dropping %d message(s) for closed run %s/%s", len(fresh), wid, rid)
                self._dispatch(self._refuse_updates(rid, fresh, last_state["status"]))
                return
            inbound = ([start] if start else []) + self._inbound(batches, fresh)
            beats, checks = self._callback_beats(wid, rid, batches, fresh)
            if not inbound and not beats and not any(m["k"] == "wake" for m in fresh):
                return
            batch = self._next_batch(wid, rid, batches, inbound, fresh, last_state)
            carried: dict[str, float] = last_state.get("callback_beats") or {}
            if carried or beats:
                batch.state["callback_beats"] = {**carried, **beats}
                batch.outbox.extend(checks)
            try:
                self.store.append(rid, batch)
            except AppendConflict:
                log.info("lost an append race on %s/%s batch %d; re-reading", wid, rid,
                         batch.number)
                continue
            if batch.state.get("status", h.RUNNING) == h.RUNNING:
                self.history.keep(rid, [*batches, batch])
            else:
                self.history.forget(rid)
            self._dispatch(batch.outbox)
            self._project(wid, rid, batches, batch)
            if self.on_events is not None:
                self.on_events(wid, rid, batch.to_events())
            return
        raise RetryLater(f"{MAX_APPEND_RACES} append races in a row on {wid}/{rid}")

    def _start_event(self, wid: str, rid: str, sent_at: float | None) -> Any:
        head = self.store.get_head(wid)
        if head is not None and head.run_id == rid:
            attrs = {"workflow_id": wid, "run_id": rid, "workflow_type": head.workflow_type,
                     "args": head.args, "attempt": 1, "start_time": head.start_time}
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
        lost_race = head is not None and head.status == h.RUNNING
        if lost_race or age > ORPHAN_GRACE:
            log.info("dropping wake-up of run %s/%s that was never created", wid, rid)
            return None
        raise RetryLater(f"run {wid}/{rid} is not written yet")

    def _repair(self, wid: str, rid: str, batches: list[h.Batch],
                redelivered: list[h.Batch]) -> None:
        """A consumed message came back: its decider may have died before sending. Send
        again what that batch's outbox asked for and history has not settled since (so a
        late redelivery never re-runs finished work)."""
        settled = _settled(batches)
        for batch in {b.number: b for b in redelivered}.values():
            pending = [e for e in batch.outbox if not _is_settled(e, settled)]
            log.info("re-sending %d of %d outbox entries of %s/%s batch %d", len(pending),
                     len(batch.outbox), wid, rid, batch.number)
            self._dispatch(pending)
        if redelivered:
            last = batches[-1]
            self.store.project(wid, rid, last.number, last.state, last.state.get("task_failure"))

    def _inbound(self, batches: list[h.Batch], fresh: list[dict[str, Any]]) -> list[Any]:
        """New inbound events from messages, without the ones history already settled."""
        open_activities: set[int] = set()
        open_timers: set[int] = set()
        callbacks: dict[int, tuple[float, dict[str, Any]]] = {}
        open_children: set[int] = set()
        cancel_requested = False
        for batch in batches:
            for etype, attrs in batch.events:
                match etype:
                    case h.CHILD_INITIATED:
                        open_children.add(attrs["seq"])
                    case h.CHILD_COMPLETED | h.CHILD_FAILED:
                        open_children.discard(attrs["seq"])
                    case h.CALLBACK_CREATED:
                        callbacks[attrs["seq"]] = (batch.time, attrs)
                    case h.CALLBACK_COMPLETED | h.CALLBACK_FAILED | h.CALLBACK_TIMED_OUT:
                        callbacks.pop(attrs["seq"], None)
                    case h.ACTIVITY_SCHEDULED:
                        open_activities.add(attrs["seq"])
                    case h.ACTIVITY_COMPLETED | h.ACTIVITY_FAILED | h.ACTIVITY_TIMED_OUT:
                        open_activities.discard(attrs["seq"])
                    case h.TIMER_STARTED:
                        open_timers.add(attrs["seq"])
                    case h.TIMER_FIRED | h.TIMER_CANCELED:
                        open_timers.discard(attrs["seq"])
                    case h.CANCEL_REQUESTED:
                        cancel_requested = True
        events: list[Any] = []
        for msg in fresh:
            match msg["k"]:
                case "activity" if msg["seq"] in open_activities:
                    open_activities.discard(msg["seq"])
                    if "failure" in msg:
                        etype = h.ACTIVITY_TIMED_OUT if msg.get("timed_out") else h.ACTIVITY_FAILED
                        events.append((etype, {"seq": msg["seq"], "attempt": msg["attempt"],
                                               "failure": msg["failure"]}))
                    else:
                        events.append((h.ACTIVITY_COMPLETED, {"seq": msg["seq"],
                                       "attempt": msg["attempt"], "result": msg["result"]}))
                case "activity_timeout" if msg["seq"] in open_activities:
                    open_activities.discard(msg["seq"])
                    failure = to_failure(TimeoutError("activity exceeded its "
                                                      "schedule_to_close_timeout"))
                    failure.pop("stack", None)
                    events.append((h.ACTIVITY_TIMED_OUT, {"seq": msg["seq"], "failure": failure,
                                                          "timeout_type": "ScheduleToClose"}))
                case "timer" if msg["seq"] in open_timers:
                    open_timers.discard(msg["seq"])
                    events.append((h.TIMER_FIRED, {"seq": msg["seq"]}))
                case "signal":
                    events.append((h.SIGNALED, {"name": msg["name"], "args": msg["args"]}))
                case "cancel" if not cancel_requested:
                    cancel_requested = True
                    events.append((h.CANCEL_REQUESTED, {"reason": msg.get("reason")}))
                case "terminate":
                    events.append((h.TERMINATED, {"reason": msg.get("reason")}))
                    break
                case "workflow_timeout":
                    events.append((h.TIMED_OUT, {}))
                    break
                case "child" if msg["seq"] in open_children:
                    open_children.discard(msg["seq"])
                    if msg["status"] == "COMPLETED":
                        events.append((h.CHILD_COMPLETED, {"seq": msg["seq"],
                                                           "workflow_id": msg["child"],
                                                           "result": msg.get("result")}))
                    else:
                        events.append((h.CHILD_FAILED, {"seq": msg["seq"],
                                                        "workflow_id": msg["child"],
                                                        "status": msg["status"],
                                                        "failure": msg.get("failure")}))
                case "update":
                    events.append((h.UPDATE_ACCEPTED, {"update_id": msg["uid"],
                                                       "name": msg["name"],
                                                       "args": msg["args"]}))
                case "callback" if msg["seq"] in callbacks:
                    claim = self.store.callback_claim(msg["rid"], msg["seq"])
                    if claim is None:
                        if self.clock() - msg.get("_sent", msg["at"]) < ORPHAN_GRACE:
                            raise RetryLater(f"callback {msg['seq']} outcome not written yet")
                        continue  # its completer died before recording an outcome
                    callbacks.pop(msg["seq"])
                    if "failure" in claim:
                        events.append((h.CALLBACK_FAILED, {"seq": msg["seq"],
                                                           "failure": claim["failure"]}))
                    else:
                        events.append((h.CALLBACK_COMPLETED, {"seq": msg["seq"],
                                                              "result": claim.get("result")}))
                case "callback_timeout" if msg["seq"] in callbacks:
                    callbacks.pop(msg["seq"])
                    events.append((h.CALLBACK_TIMED_OUT, {"seq": msg["seq"],
                                                          "timeout_type": "timeout"}))
                case "callback_heartbeat_check" if msg["seq"] in callbacks:
                    created, attrs = callbacks[msg["seq"]]
                    beats = (batches[-1].state.get("callback_beats", {}) if batches else {})
                    last = beats.get(str(msg["seq"]), created)
                    if self.clock() - last >= attrs["heartbeat_timeout"] - 0.5:
                        callbacks.pop(msg["seq"])
                        events.append((h.CALLBACK_TIMED_OUT, {"seq": msg["seq"],
                                                              "timeout_type": "heartbeat"}))
        return events

    def _forward_to_next_run(self, new_rid: str, fresh: list[dict[str, Any]]) -> None:
        """Signals, cancels and updates addressed to a run that continued go to its successor
        (the caller saw the old run as current a moment ago)."""
        for msg in fresh:
            if msg["k"] in ("signal", "cancel", "terminate", "update"):
                self.transport.send_workflow_task(
                    {k: v for k, v in msg.items() if not k.startswith("_")}
                    | {"rid": new_rid, "mk": f"{msg['mk']}>{new_rid}"})

    @staticmethod
    def _refuse_updates(rid: str, fresh: list[dict[str, Any]], status: str,
                        ) -> list[dict[str, Any]]:
        return [{"op": "update_outcome", "rid": rid, "uid": m["uid"],
                 "outcome": {"rejected": f"workflow is closed ({status})"}}
                for m in fresh if m["k"] == "update"]

    def _callback_beats(self, wid: str, rid: str, batches: list[h.Batch],
                        fresh: list[dict[str, Any]],
                        ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Heartbeats of open callbacks: their times, and the checks that follow them."""
        limits: dict[int, float] = {}
        for batch in batches:
            for etype, attrs in batch.events:
                if etype == h.CALLBACK_CREATED and attrs.get("heartbeat_timeout"):
                    limits[attrs["seq"]] = attrs["heartbeat_timeout"]
                elif etype in (h.CALLBACK_COMPLETED, h.CALLBACK_FAILED, h.CALLBACK_TIMED_OUT):
                    limits.pop(attrs["seq"], None)
        now = self.clock()
        seqs = {m["seq"] for m in fresh if m["k"] == "callback_heartbeat" and m["seq"] in limits}
        if not seqs:
            return {}, []
        checks = [self._at(now + limits[seq], f"cbh:{rid}:{seq}:{now}", {
            "k": "callback_heartbeat_check", "wid": wid, "rid": rid, "seq": seq})
            for seq in sorted(seqs)]
        return {str(seq): now for seq in seqs}, checks

    def _next_batch(self, wid: str, rid: str, batches: list[h.Batch], inbound: list[Any],
                    fresh: list[dict[str, Any]], last_state: dict[str, Any]) -> h.Batch:
        now = self.clock()
        number = batches[-1].number + 1 if batches else 1
        first = batches[-1].next_event_id if batches else 1
        keys = [m["mk"] for m in fresh]
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
            outbox = (self._refuse_updates(rid, fresh, status)
                      + self._closing_outbox(rid, [*batches, h.Batch(0, 0, now, False, kept)],
                                             state))
            return h.Batch(number, first, now, False, kept, outbox, keys, state)
        try:
            decision = self._replay_and_decide(wid, rid, batches, inbound, now, last_state)
            outbox = self._outbox(wid, rid, batches, decision, now)
            batch = h.Batch(number, first, now, True, decision.events, outbox, keys,
                            decision.state(now))
            check_batch_size(batch)
        except Exception as exc:  # a failed task records its inputs and keeps the run RUNNING
            return self._failed_task(wid, rid, number, first, now, inbound, keys, last_state, exc)
        return batch

    def _replay_and_decide(self, wid: str, rid: str, batches: list[h.Batch],
                           inbound: list[Any], now: float,
                           last_state: dict[str, Any]) -> Decision:
        history = batches if batches else [h.Batch(0, 1, now, False, [inbound[0]])]
        definition = self.app.workflow(history[0].events[0][1]["workflow_type"])
        if batches:
            replayer = replay_history(definition, batches, self.app.activities)
        else:
            replayer = Replayer(definition, info_from_started(inbound[0][1], now),
                                self.app.activities)
        replayer.instance.new_secret = lambda: secrets.token_urlsafe(24)  # 192 random bits
        return replayer.decide(inbound, now, self._run_local, last_state.get("local_retries"))

    def _failed_task(self, wid: str, rid: str, number: int, first: int, now: float,
                     inbound: list[Any], keys: list[str], last_state: dict[str, Any],
                     exc: Exception) -> h.Batch:
        """Record the inbound events undecided and try the task again later."""
        failures = int(last_state.get("task_failures", 0)) + 1
        delay = min(2.0 ** failures, MAX_TASK_RETRY_DELAY)
        kind = "non-determinism" if isinstance(exc, NonDeterminismError) else "workflow task"
        message = f"{kind} error: {exc}"
        log.error("%s in %s/%s (attempt %d, retrying in %.0fs)", message, wid, rid, failures, delay)
        key = f"retry:{rid}:{number}"
        outbox = [{"op": "at", "due": now + delay, "key": key,
                   "envelope": {"to": "workflow", "msg": {"k": "wake", "wid": wid, "rid": rid,
                                                          "mk": key}}}]
        state = {**last_state, "status": h.RUNNING, "task_failures": failures,
                 "task_failure": message}
        # Updates cannot be validated without a working replay: refuse rather than record them.
        outbox += [{"op": "update_outcome", "rid": rid, "uid": attrs["update_id"],
                    "outcome": {"rejected": f"workflow task failed: {message}"}}
                   for etype, attrs in inbound if etype == h.UPDATE_ACCEPTED]
        kept = [e for e in inbound if e[0] != h.UPDATE_ACCEPTED]
        return h.Batch(number, first, now, False, kept, outbox, keys, state)

    def _outbox(self, wid: str, rid: str, batches: list[h.Batch], decision: Decision,
                now: float) -> list[dict[str, Any]]:
        outbox: list[dict[str, Any]] = []
        started_at = {attrs["seq"]: (b.time, attrs["fire_at"]) for b in batches
                      for etype, attrs in b.events if etype == h.TIMER_STARTED}
        for cmd in decision.commands:
            match cmd:
                case h.ScheduleActivity():
                    options = ActivityOptions.from_dict(cmd.options)
                    self.transport.activity_queue_url(options.task_queue)  # fail fast if unknown
                    check_payload(f"arguments of activity {cmd.activity_type!r}", cmd.args)
                    task = {"wid": wid, "rid": rid, "seq": cmd.seq,
                            "activity_type": cmd.activity_type, "args": cmd.args,
                            "options": cmd.options, "attempt": 1, "scheduled_at": now}
                    outbox.append({"op": "activity", "queue": options.task_queue, "msg": task})
                    if options.schedule_to_close_timeout is not None:
                        key = f"ato:{rid}:{cmd.seq}"
                        outbox.append(self._at(now + options.schedule_to_close_timeout, key, {
                            "k": "activity_timeout", "wid": wid, "rid": rid, "seq": cmd.seq}))
                case h.StartTimer():
                    started_at[cmd.seq] = (now, cmd.fire_at)
                    outbox.append(self._at(cmd.fire_at, f"t:{rid}:{cmd.seq}",
                                           {"k": "timer", "wid": wid, "rid": rid,
                                            "seq": cmd.seq}))
                case h.CreateCallback():
                    if cmd.timeout is not None:
                        outbox.append(self._at(now + cmd.timeout, f"cbt:{rid}:{cmd.seq}", {
                            "k": "callback_timeout", "wid": wid, "rid": rid, "seq": cmd.seq}))
                    if cmd.heartbeat_timeout is not None:
                        outbox.append(self._at(
                            now + cmd.heartbeat_timeout, f"cbh:{rid}:{cmd.seq}:{now}",
                            {"k": "callback_heartbeat_check", "wid": wid, "rid": rid,
                             "seq": cmd.seq}))
                case h.CancelTimer():
                    began, fire_at = started_at[cmd.seq]
                    outbox.append({"op": "cancel_at", "key": f"t:{rid}:{cmd.seq}",
                                   "scheduler": fire_at - began > MAX_SQS_DELAY})
        for etype, attrs in decision.events:
            if etype == h.STARTED and attrs.get("execution_deadline") is not None:
                outbox.append(self._at(attrs["execution_deadline"], f"wto:{rid}",
                                       {"k": "workflow_timeout", "wid": wid, "rid": rid}))
        for cmd in decision.commands:
            if isinstance(cmd, h.ContinueAsNew):
                check_payload("continue-as-new arguments", cmd.args)
                started = (batches[0].events[0][1] if batches else decision.events[0][1])
                outbox.append({"op": "continue", "wid": wid, "rid": rid,
                               "new_rid": cmd.new_run_id, "args": cmd.args,
                               "workflow_type": started["workflow_type"],
                               "deadline": started.get("execution_deadline"),
                               "parent": started.get("parent")})
        for cmd in decision.commands:
            if isinstance(cmd, h.CompleteUpdate):
                outbox.append({"op": "update_outcome", "rid": rid, "uid": cmd.update_id,
                               "outcome": cmd.outcome})
        history = [*batches, h.Batch(0, 0, now, True, decision.events)]
        children = {attrs["seq"]: attrs for b in history for etype, attrs in b.events
                    if etype == h.CHILD_INITIATED}
        started = history[0].events[0][1]
        for cmd in decision.commands:
            if isinstance(cmd, h.StartChild):
                check_payload(f"arguments of child workflow {cmd.workflow_type!r}", cmd.args)
                outbox.append({"op": "start_child", "wid": cmd.workflow_id, "rid": cmd.run_id,
                               "workflow_type": cmd.workflow_type, "args": cmd.args,
                               "parent": {"wid": wid, "rid": rid, "seq": cmd.seq}})
            elif isinstance(cmd, h.CancelChild) and cmd.seq in children:
                child = children[cmd.seq]
                outbox.append({"op": "workflow", "msg": {
                    "k": "cancel", "wid": child["workflow_id"], "rid": child["run_id"],
                    "reason": "parent stopped waiting", "mk": f"pcancel:{child['run_id']}"}})
        if decision.status != h.RUNNING:
            outbox += self._closing_outbox(rid, history, {
                "status": decision.status, "result": decision.result,
                "failure": decision.failure, "started": started})
        for uid, reason in decision.rejected_updates.items():
            outbox.append({"op": "update_outcome", "rid": rid, "uid": uid,
                           "outcome": {"rejected": reason}})
        for seq, retry in decision.local_retries.items():
            key = f"la:{rid}:{seq}:{retry['attempt']}"
            outbox.append(self._at(retry["at"], key, {"k": "wake", "wid": wid, "rid": rid}))
        return outbox

    def _closing_outbox(self, rid: str, history: list[h.Batch],
                        state: dict[str, Any]) -> list[dict[str, Any]]:
        """A run closed: tell its parent, and apply the parent close policy to open children."""
        outbox: list[dict[str, Any]] = []
        status = state["status"]
        started = history[0].events[0][1] if history and history[0].events else {}
        parent = started.get("parent")
        if parent and status != "CONTINUED_AS_NEW":  # the last run of a chain reports
            msg = {"k": "child", "wid": parent["wid"], "rid": parent["rid"],
                   "seq": parent["seq"], "child": started.get("workflow_id"), "status": status,
                   "mk": f"child:{rid}"}
            if status == "COMPLETED":
                msg["result"] = state.get("result")
            else:
                msg["failure"] = state.get("failure") or {"message": status.lower()}
            outbox.append({"op": "workflow", "msg": msg})
        open_children: dict[int, dict[str, Any]] = {}
        open_updates: set[str] = set()
        for batch in history:
            for etype, attrs in batch.events:
                if etype == h.CHILD_INITIATED:
                    open_children[attrs["seq"]] = attrs
                elif etype in (h.CHILD_COMPLETED, h.CHILD_FAILED):
                    open_children.pop(attrs["seq"], None)
                elif etype == h.UPDATE_ACCEPTED:
                    open_updates.add(attrs["update_id"])
                elif etype == h.UPDATE_COMPLETED:
                    open_updates.discard(attrs["update_id"])
        for uid in sorted(open_updates):  # their callers must not wait forever
            outbox.append({"op": "update_outcome", "rid": rid, "uid": uid,
                           "outcome": {"rejected": f"workflow closed ({status}) before the "
                                                   "update finished"}})
        for child in open_children.values():
            kind = {"terminate": "terminate", "request_cancel": "cancel"}.get(
                child["parent_close_policy"])
            if kind is not None:
                outbox.append({"op": "workflow", "msg": {
                    "k": kind, "wid": child["workflow_id"], "rid": child["run_id"],
                    "reason": f"parent closed ({status})",
                    "mk": f"pclose:{kind}:{child['run_id']}"}})
        return outbox

    def _start_child(self, entry: dict[str, Any]) -> None:
        """Start a child run once, however often a replaying parent asks (its run id is
        derived from the parent's), or tell the parent its id is taken."""
        head = Head(entry["wid"], entry["rid"], entry["workflow_type"], h.RUNNING, self.clock(),
                    entry["args"], parent=entry["parent"])
        try:
            self.store.create_head(head)
        except StartConflict as conflict:
            if conflict.head is None or conflict.head.run_id != entry["rid"]:
                parent = entry["parent"]
                self.transport.send_workflow_task({
                    "k": "child", "wid": parent["wid"], "rid": parent["rid"],
                    "seq": parent["seq"], "child": entry["wid"], "status": "FAILED",
                    "failure": {"kind": "application", "type": "WorkflowAlreadyStarted",
                                "message": f"workflow {entry['wid']!r} is already running"},
                    "mk": f"child:{entry['rid']}"})
                return
        self.transport.send_workflow_task({"k": "start", "wid": entry["wid"],
                                           "rid": entry["rid"], "mk": f"s:{entry['rid']}"})

    def _dispatch(self, outbox: list[dict[str, Any]]) -> None:
        """Carry out an outbox: table operations here, messages through the transport."""
        for entry in outbox:
            if entry["op"] == "continue":
                self._continue_as_new(entry)
            elif entry["op"] == "start_child":
                self._start_child(entry)
            elif entry["op"] == "update_outcome":
                self.store.put_update_outcome(entry["rid"], entry["uid"], entry["outcome"])
            else:
                self.transport.dispatch([entry])

    def _continue_as_new(self, entry: dict[str, Any]) -> None:
        """Hand the workflow id to the next run, then wake it (both safe to repeat)."""
        head = Head(entry["wid"], entry["new_rid"], entry["workflow_type"], h.RUNNING,
                    self.clock(), entry["args"], continued_from=entry["rid"],
                    deadline=entry.get("deadline"), parent=entry.get("parent"))
        try:
            self.store.create_head(head, replacing=entry["rid"])
        except StartConflict as conflict:
            if conflict.head is None or conflict.head.run_id != entry["new_rid"]:
                log.warning("workflow %s moved on before run %s could continue as new",
                            entry["wid"], entry["rid"])
                return  # else: written by an earlier attempt; make sure it is woken
        self.transport.send_workflow_task({"k": "start", "wid": entry["wid"],
                                           "rid": entry["new_rid"],
                                           "mk": f"s:{entry['new_rid']}"})

    @staticmethod
    def _at(due: float, key: str, msg: dict[str, Any]) -> dict[str, Any]:
        return {"op": "at", "due": due, "key": key,
                "envelope": {"to": "workflow", "msg": {**msg, "mk": key}}}

    def _project(self, wid: str, rid: str, batches: list[h.Batch], batch: h.Batch) -> None:
        before = batches[-1].state if batches else {}
        after = batch.state
        if not batches or any(before.get(k) != after.get(k)
                              for k in ("status", "custom_status", "task_failure")):
            self.store.project(wid, rid, batch.number, after, after.get("task_failure"))

    def _run_local(self, cmd: h.RunLocalActivity, attempt: int) -> LocalOutcome:
        """Run one local-activity attempt inline; failures retry per its policy."""
        options = ActivityOptions.from_dict(cmd.options)
        now = self.clock()
        try:
            definition = self.app.activity(cmd.activity_type)
            info = ActivityInfo("", "", cmd.seq, cmd.activity_type, attempt,
                                options.task_queue, now, None, local=True)
            ctx = ActivityContext(info, None)
            result = call_activity(definition.fn, cmd.args, ctx,
                                   options.start_to_close_timeout, None)
            check_payload(f"result of local activity {cmd.activity_type!r}", result)
            return LocalOutcome(attempt, result=result)
        except Exception as exc:
            failure = _failure(exc, attempt)
            if not isinstance(exc, UnknownTypeError) and should_retry(options.retry, attempt,
                                                                     failure):
                return LocalOutcome(attempt, retry_at=now + backoff(options.retry, attempt))
            return LocalOutcome(attempt, failure=failure)

    # ================================================================== activity tasks
    def handle_activity_task(self, task: dict[str, Any], receive_count: int = 1) -> None:
        """Run one activity attempt; report the outcome or schedule the next attempt."""
        options = ActivityOptions.from_dict(task["options"])
        attempt = task["attempt"]
        now = self.clock()
        deadline = (task["scheduled_at"] + options.schedule_to_close_timeout
                    if options.schedule_to_close_timeout is not None else None)
        wid, rid, seq = task["wid"], task["rid"], task["seq"]
        info = ActivityInfo(wid, rid, seq, task["activity_type"], attempt, options.task_queue,
                            task["scheduled_at"], options.heartbeat_timeout)
        ctx = ActivityContext(info, None,
                              save=lambda d: self.store.save_heartbeat(rid, seq, attempt, d))
        try:
            if receive_count > 1:
                # The worker that received this before died or overran: that attempt failed
                # with a timeout. Retrying it as a new message (below) keeps a worker that
                # keeps dying on the retry policy instead of walking the message to the DLQ.
                raise TimeoutError(f"attempt {attempt} did not finish: its worker died or "
                                   "ran past the Lambda timeout")
            if attempt > 1:
                ctx.heartbeat_details = self.store.load_heartbeat(rid, seq)
            definition = self.app.activity(task["activity_type"])
            timeout = options.start_to_close_timeout
            if deadline is not None:
                remaining = deadline - now
                if remaining <= 0:
                    raise TimeoutError("activity exceeded its schedule_to_close_timeout")
                timeout = remaining if timeout is None else min(timeout, remaining)
            result = call_activity(definition.fn, task["args"], ctx, timeout,
                                   options.heartbeat_timeout)
            check_payload(f"result of activity {task['activity_type']!r}", result)
        except Exception as exc:
            ctx.flush()
            failure = _failure(exc, attempt)
            retry_at = self.clock() + backoff(options.retry, attempt)
            retryable = (not isinstance(exc, UnknownTypeError | PayloadTooLargeError)
                         and should_retry(options.retry, attempt, failure)
                         and (deadline is None or retry_at < deadline))
            if retryable:
                nxt = {**task, "attempt": attempt + 1}
                self.transport.deliver_at(retry_at, {"to": "activity", "queue": options.task_queue,
                                                     "msg": nxt}, f"ar:{rid}:{seq}:{attempt + 1}")
                return
            self._report(task, attempt, error=exc, failure=failure)
            return
        self._report(task, attempt, result=result)

    def _report(self, task: dict[str, Any], attempt: int, result: Any = None,
                error: BaseException | None = None, failure: dict[str, Any] | None = None) -> None:
        msg: dict[str, Any] = {"k": "activity", "wid": task["wid"], "rid": task["rid"],
                               "seq": task["seq"], "attempt": attempt,
                               "mk": f"a:{task['rid']}:{task['seq']}"}
        if error is None:
            msg["result"] = result
        else:
            msg["failure"] = failure or _failure(error, attempt)
            msg["timed_out"] = isinstance(error, TimeoutError)
        self.transport.send_workflow_task(msg)

    # ================================================================== due deliveries
    def handle_due(self, body: dict[str, Any]) -> None:
        """A delayed delivery arrived: forward it, or wait longer if it is early."""
        if body["due"] - self.clock() > 1.0:
            envelope = {k: v for k, v in body.items() if k not in ("due", "key")}
            self.transport.deliver_at(body["due"], envelope, body["key"])
            return
        self.transport.forward(body)


_SETTLING = {h.ACTIVITY_COMPLETED: "activity", h.ACTIVITY_FAILED: "activity",
             h.ACTIVITY_TIMED_OUT: "activity", h.TIMER_FIRED: "timer", h.TIMER_CANCELED: "timer",
             h.CALLBACK_COMPLETED: "callback", h.CALLBACK_FAILED: "callback",
             h.CALLBACK_TIMED_OUT: "callback", h.CHILD_COMPLETED: "child",
             h.CHILD_FAILED: "child"}


def _settled(batches: list[h.Batch]) -> set[tuple[str, int]]:
    """(kind, seq) of every activity, timer, callback and child that history has closed."""
    return {(_SETTLING[etype], attrs["seq"]) for batch in batches
            for etype, attrs in batch.events if etype in _SETTLING}


def _is_settled(entry: dict[str, Any], settled: set[tuple[str, int]]) -> bool:
    match entry["op"]:
        case "activity":
            return ("activity", entry["msg"]["seq"]) in settled
        case "at":
            msg = entry["envelope"]["msg"]
            kind = {"timer": "timer", "activity_timeout": "activity",
                    "callback_timeout": "callback",
                    "callback_heartbeat_check": "callback"}.get(msg.get("k", ""))
            return kind is not None and (kind, msg["seq"]) in settled
        case "start_child":
            return ("child", entry["parent"]["seq"]) in settled
    return False


def _failure(exc: BaseException, attempt: int) -> dict[str, Any]:
    failure = to_failure(exc)
    failure["attempt"] = attempt
    return failure
