"""The outbox: what a decision asks to be sent, recorded in the same write as the decision.

Built from the decision's commands and the run's `HistoryIndex`; carried out after the append
(and again by crash repair for what history has not settled since).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core import history as h
from .._core import keys, wire
from .._core.definitions import ActivityOptions
from .._core.errors import UnknownTypeError
from .._core.index import HistoryIndex
from .._core.replay import Decision
from .._core.serde import encode_payload
from .ports import MAX_SQS_DELAY


def at(due: float, msg: wire.Message) -> wire.DeliverAt:
    """Deliver `msg` at `due`, named by the message's own key."""
    return wire.DeliverAt(due, msg.key, wire.Envelope(msg))


def decision_outbox(wid: str, rid: str, index: HistoryIndex, decision: Decision, now: float,
                    has_task_queue: Callable[[str], bool]) -> list[wire.Outbox]:
    """Everything `decision` asks for. `index` is the run before it (it is extended here)."""
    outbox: list[wire.Outbox] = []
    timers = dict(index.timers)  # open before this decision; cancelled ones are looked up here
    activities = set(index.activities)  # open ones, and those this decision schedules
    for cmd in decision.commands:
        match cmd:
            case h.ScheduleActivity():
                activities.add(cmd.seq)
                options = ActivityOptions.from_dict(cmd.options)
                if not has_task_queue(options.task_queue):  # fail the task, not the send
                    raise UnknownTypeError(f"no SQS queue configured for task queue "
                                           f"{options.task_queue!r}")
                encode_payload(f"arguments of activity {cmd.activity_type!r}", cmd.args)
                outbox.append(wire.SendActivity(wire.ActivityTask(
                    wid, rid, cmd.seq, cmd.activity_type, cmd.args, cmd.options, 1, now)))
                if options.schedule_to_close_timeout is not None:
                    outbox.append(at(now + options.schedule_to_close_timeout, wire.ActivityTimeout(
                        wid, rid, keys.activity_timeout(rid, cmd.seq), seq=cmd.seq)))
            case h.StartTimer():
                timers[cmd.seq] = (now, cmd.fire_at)
                outbox.append(at(cmd.fire_at, wire.TimerFired(wid, rid, keys.timer(rid, cmd.seq),
                                                              seq=cmd.seq)))
            case h.CreateCallback():
                if cmd.timeout is not None:
                    outbox.append(at(now + cmd.timeout, wire.CallbackTimeout(
                        wid, rid, keys.callback_timeout(rid, cmd.seq), seq=cmd.seq)))
                if cmd.heartbeat_timeout is not None:
                    outbox.append(at(now + cmd.heartbeat_timeout, wire.CallbackHeartbeatCheck(
                        wid, rid, keys.callback_heartbeat_check(rid, cmd.seq, now), seq=cmd.seq)))
            case h.RequestCancelActivity() if cmd.seq in activities:
                outbox.append(wire.CancelActivity(rid, cmd.seq))  # after the append, like all
            case h.CancelTimer():
                began, fire_at = timers[cmd.seq]
                outbox.append(wire.CancelAt(keys.timer(rid, cmd.seq),
                                            scheduler=fire_at - began > MAX_SQS_DELAY))
    for etype, attrs in decision.events:
        if etype == h.STARTED and attrs.get("execution_deadline") is not None:
            outbox.append(at(attrs["execution_deadline"], wire.WorkflowTimeout(
                wid, rid, keys.workflow_timeout(rid))))
    index.extend(now, decision.events)
    started = index.started
    for cmd in decision.commands:
        match cmd:
            case h.ContinueAsNew():
                encode_payload("continue-as-new arguments", cmd.args)
                outbox.append(wire.ContinueRun(
                    wid, rid, cmd.new_run_id, started["workflow_type"], cmd.args,
                    started.get("execution_deadline"), started.get("parent")))
            case h.CompleteUpdate():
                outbox.append(wire.UpdateOutcome(rid, cmd.update_id, cmd.outcome))
    for cmd in decision.commands:
        if isinstance(cmd, h.StartChild):
            encode_payload(f"arguments of child workflow {cmd.workflow_type!r}", cmd.args)
            outbox.append(wire.StartChild(cmd.workflow_id, cmd.run_id, cmd.workflow_type,
                                          cmd.args, {"wid": wid, "rid": rid, "seq": cmd.seq}))
        elif isinstance(cmd, h.CancelChild) and cmd.seq in index.children:
            child = index.children[cmd.seq]
            outbox.append(wire.SendMessage(wire.Cancel(
                child["workflow_id"], child["run_id"], keys.parent_cancel(child["run_id"]),
                reason="parent stopped waiting")))
    if decision.status != h.RUNNING:
        outbox += [entry for entry in closing_outbox(rid, index, decision.status,
                                                     decision.result, decision.failure)
                   if entry not in outbox]  # an activity cancelled in this decision: once
    for uid, reason in decision.rejected_updates.items():
        outbox.append(wire.reject_update(rid, uid, reason))
    for seq, retry in decision.local_retries.items():
        if retry.get("deferred"):  # one wake-up for them all (`Decision.continues`)
            continue
        outbox.append(at(retry["at"], wire.Wake(
            wid, rid, keys.local_retry(rid, int(seq), retry["attempt"]))))
    return outbox


def closing_outbox(rid: str, index: HistoryIndex, status: str, result: Any = None,
                   failure: dict[str, Any] | None = None) -> list[wire.Outbox]:
    """A run closed: tell its parent, refuse open updates, apply the close policy to children,
    and raise the cancel flag of activities still open (their heartbeats then raise, as
    Temporal's fail for a closed workflow; a report that follows finds the run closed)."""
    outbox: list[wire.Outbox] = [wire.CancelActivity(rid, seq)
                                 for seq in sorted(index.activities)]
    started = index.started
    parent = started.get("parent")
    if parent and status != h.Status.CONTINUED_AS_NEW:  # the last run of a chain reports
        key = keys.child_outcome(rid)
        report = (wire.ChildOutcome(parent["wid"], parent["rid"], key, seq=parent["seq"],
                                    child_workflow_id=started.get("workflow_id", ""),
                                    status=status, result=result)
                  if status == h.Status.COMPLETED else
                  wire.ChildOutcome(parent["wid"], parent["rid"], key, seq=parent["seq"],
                                    child_workflow_id=started.get("workflow_id", ""),
                                    status=status,
                                    failure=failure or {"message": status.lower()}))
        outbox.append(wire.SendMessage(report))
    for uid in sorted(index.open_updates):  # their callers must not wait forever
        outbox.append(wire.reject_update(
            rid, uid, f"workflow closed ({status}) before the update finished"))
    for seq in sorted(index.open_children):
        child = index.children[seq]
        policy = child["parent_close_policy"]
        reason = f"parent closed ({status})"
        if policy == "terminate":
            outbox.append(wire.SendMessage(wire.Terminate(
                child["workflow_id"], child["run_id"],
                keys.parent_close("terminate", child["run_id"]), reason=reason)))
        elif policy == "request_cancel":
            outbox.append(wire.SendMessage(wire.Cancel(
                child["workflow_id"], child["run_id"],
                keys.parent_close("cancel", child["run_id"]), reason=reason)))
    return outbox


def refuse_updates(rid: str, fresh: list[wire.Delivery], reason: str) -> list[wire.Outbox]:
    """Updates among `fresh` that will not run: their callers learn why."""
    return [wire.reject_update(rid, d.message.update_id, reason) for d in fresh
            if isinstance(d.message, wire.Update)]


def unsettled(outbox: list[wire.Outbox], index: HistoryIndex) -> list[wire.Outbox]:
    """The entries of an old outbox that history has not settled since (crash repair)."""
    return [entry for entry in outbox if not _settled(entry, index)]


_DUE_KIND: dict[type, str] = {wire.TimerFired: "timer", wire.ActivityTimeout: "activity",
             wire.CallbackTimeout: "callback", wire.CallbackHeartbeatCheck: "callback"}


def _settled(entry: wire.Outbox, index: HistoryIndex) -> bool:
    match entry:
        case wire.SendActivity(task=task):
            return index.is_settled("activity", task.seq)
        case wire.CancelActivity(seq=seq):
            return index.is_settled("activity", seq)  # ended: nobody is left to tell
        case wire.DeliverAt(envelope=wire.Envelope(msg=msg)):
            kind = _DUE_KIND.get(type(msg))
            return kind is not None and index.is_settled(kind, msg.seq)  # type: ignore[union-attr]
        case wire.StartChild(parent=parent):
            return index.is_settled("child", parent["seq"])
    return False
