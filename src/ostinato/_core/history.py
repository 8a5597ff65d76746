"""History: events, the batches they are appended in, and the commands that produce them.

A *batch* is the unit of append: the inbound events one workflow task consumed (activity
results, timer firings, signals, ...) followed by the events of the commands the workflow code
issued in reaction. The batch number is the sequence number an append is conditional on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from . import wire
from .errors import PayloadTooLargeError
from .records import Record
from .records import field as rfield
from .serde import dumps, loads

# Inbound events: facts from the outside world, applied to the workflow before its code runs.
STARTED = "WorkflowExecutionStarted"
ACTIVITY_COMPLETED = "ActivityTaskCompleted"
ACTIVITY_FAILED = "ActivityTaskFailed"
ACTIVITY_TIMED_OUT = "ActivityTaskTimedOut"
ACTIVITY_CANCELED = "ActivityTaskCanceled"
TIMER_FIRED = "TimerFired"
SIGNALED = "WorkflowExecutionSignaled"
CANCEL_REQUESTED = "WorkflowExecutionCancelRequested"
TERMINATED = "WorkflowExecutionTerminated"

# Command events: what the workflow code decided.
ACTIVITY_SCHEDULED = "ActivityTaskScheduled"
ACTIVITY_CANCEL_REQUESTED = "ActivityTaskCancelRequested"
TIMER_STARTED = "TimerStarted"
TIMER_CANCELED = "TimerCanceled"
MARKER_RECORDED = "MarkerRecorded"
COMPLETED = "WorkflowExecutionCompleted"
FAILED = "WorkflowExecutionFailed"
CANCELLED = "WorkflowExecutionCancelled"
TIMED_OUT = "WorkflowExecutionTimedOut"
CONTINUED_AS_NEW = "WorkflowExecutionContinuedAsNew"
CALLBACK_CREATED = "CallbackCreated"
UPDATE_ACCEPTED = "WorkflowExecutionUpdateAccepted"
CHILD_INITIATED = "StartChildWorkflowExecutionInitiated"
CHILD_COMPLETED = "ChildWorkflowExecutionCompleted"
CHILD_FAILED = "ChildWorkflowExecutionFailed"
CHILD_CANCEL_REQUESTED = "RequestCancelChildWorkflowExecutionInitiated"
UPDATE_COMPLETED = "WorkflowExecutionUpdateCompleted"
CALLBACK_COMPLETED = "CallbackCompleted"
CALLBACK_FAILED = "CallbackFailed"
CALLBACK_TIMED_OUT = "CallbackTimedOut"

INBOUND = frozenset({STARTED, ACTIVITY_COMPLETED, ACTIVITY_FAILED, ACTIVITY_TIMED_OUT,
                     ACTIVITY_CANCELED,
                     TIMER_FIRED, SIGNALED, CANCEL_REQUESTED, TERMINATED, TIMED_OUT,
                     CALLBACK_COMPLETED, CALLBACK_FAILED, CALLBACK_TIMED_OUT,
                     UPDATE_ACCEPTED, CHILD_COMPLETED, CHILD_FAILED})


class Status(StrEnum):
    """A run's status, as describe and list show it (equal to its plain string)."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TERMINATED = "TERMINATED"
    CONTINUED_AS_NEW = "CONTINUED_AS_NEW"
    TIMED_OUT = "TIMED_OUT"


#: The closing event of each status other than RUNNING.
CLOSING = {COMPLETED: Status.COMPLETED, FAILED: Status.FAILED, CANCELLED: Status.CANCELLED,
           TERMINATED: Status.TERMINATED, TIMED_OUT: Status.TIMED_OUT,
           CONTINUED_AS_NEW: Status.CONTINUED_AS_NEW}

RUNNING = Status.RUNNING


@dataclass(frozen=True)
class Event:
    """One history event, as `handle.history()` returns it."""

    event_id: int
    event_type: str
    timestamp: datetime
    attributes: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "event_type": self.event_type,
                "timestamp": self.timestamp.isoformat(), **self.attributes}


@dataclass
class Batch:
    """One append to a run's history (see the module docstring)."""

    number: int
    first_event_id: int
    time: float
    decided: bool
    events: list[tuple[str, dict[str, Any]]]
    outbox: list[wire.Outbox] = field(default_factory=list)
    consumed: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def next_event_id(self) -> int:
        return self.first_event_id + len(self.events)

    def to_events(self) -> list[Event]:
        ts = datetime.fromtimestamp(self.time, UTC)
        return [Event(self.first_event_id + i, etype, ts, attrs)
                for i, (etype, attrs) in enumerate(self.events)]


#: A batch is written in one transaction: at most 100 items and 4 MB, so stay below that.
MAX_BATCH_BYTES = 3_500_000
#: A batch that goes to the payload bucket is one S3 object; what a decider replays must
#: still fit its memory (several payloads of serde.MAX_PAYLOAD_BYTES).
MAX_OFFLOADED_BATCH_BYTES = 128 * 1024 * 1024


def batch_limit(offloads: bool) -> int:
    """The largest batch a store takes: with a payload store, one object; else a transaction."""
    return MAX_OFFLOADED_BATCH_BYTES if offloads else MAX_BATCH_BYTES


def encode_body(batch: Batch) -> str:
    """The JSON a batch is stored as: events, outbox (activity tasks without the arguments
    their ActivityTaskScheduled event already holds) and state."""
    outbox = []
    for entry in batch.outbox:
        encoded = entry.encode()
        if isinstance(entry, wire.SendActivity):
            encoded["msg"].pop("args")
        outbox.append(encoded)
    return dumps({"events": batch.events, "outbox": outbox, "state": batch.state})


def decode_body(number: int, first_event_id: int, time: float, decided: bool,
                consumed: list[str], body_json: str) -> Batch:
    """The batch `encode_body` wrote."""
    body = loads(body_json)
    events = [(etype, attrs) for etype, attrs in body["events"]]
    args = {attrs["seq"]: attrs["args"] for etype, attrs in events
            if etype == ACTIVITY_SCHEDULED}
    outbox = [wire.decode_outbox({**e, "msg": {**e["msg"], "args": args[e["msg"]["seq"]]}}
                                 if e["op"] == "activity" else e) for e in body["outbox"]]
    return Batch(number, first_event_id, time, decided, events, outbox, consumed,
                 body["state"])


def check_batch_size(batch: Batch, limit: int = MAX_BATCH_BYTES) -> int:
    """Refuse a batch the store cannot write (`PayloadTooLargeError`): see `batch_limit`;
    return its encoded size in bytes."""
    return sized_body(batch, limit)[1]


def sized_body(batch: Batch, limit: int = MAX_BATCH_BYTES) -> tuple[str, int]:
    """`encode_body(batch)` and its size in bytes, refused as `check_batch_size` refuses it:
    one encoding for a store that needs both."""
    body = encode_body(batch)
    size = len(body) if body.isascii() else len(body.encode())
    if size > limit:
        raise PayloadTooLargeError("one workflow task's history batch", size, limit)
    return body, size


# --- commands -------------------------------------------------------------------------------

class Command(Record, ABC):
    """Something the workflow code asked for; `event()` is how history records it."""

    seq: int

    @abstractmethod
    def event(self) -> tuple[str, dict[str, Any]]:
        """The history event recording this command."""

    def matches(self, etype: str, attrs: dict[str, Any]) -> bool:
        mine, my_attrs = self.event()
        return mine == etype and attrs.get("seq") == self.seq and all(
            attrs.get(k) == my_attrs.get(k) for k in self.identity)

    identity: ClassVar[tuple[str, ...]] = ()


class ScheduleActivity(Command):
    activity_type: str = ""
    args: list[Any] = rfield(default_factory=list)
    options: dict[str, Any] = rfield(default_factory=dict)
    identity: ClassVar[tuple[str, ...]] = ("activity_type",)

    def event(self) -> tuple[str, dict[str, Any]]:
        return ACTIVITY_SCHEDULED, {"seq": self.seq, "activity_type": self.activity_type,
                                    "args": self.args, "options": self.options}


#: What `execute_activity(..., cancellation_type=)` accepts (Temporal's meanings).
CANCELLATION_TYPES = ("try_cancel", "wait_cancellation_completed", "abandon")


class RequestCancelActivity(Command):
    """The workflow stopped waiting for activity `seq` (its task was cancelled): ask the
    running attempt to stop (it learns at its next heartbeat)."""

    def event(self) -> tuple[str, dict[str, Any]]:
        return ACTIVITY_CANCEL_REQUESTED, {"seq": self.seq}


class RunLocalActivity(Command):
    """Resolved by a `MarkerRecorded` event carrying the outcome, recorded by the decider."""

    activity_type: str = ""
    args: list[Any] = rfield(default_factory=list)
    options: dict[str, Any] = rfield(default_factory=dict)
    #: the plain callable to run, when it is not a registered @activity (never recorded)
    fn: Any = rfield(default=None, compare=False)
    identity: ClassVar[tuple[str, ...]] = ("activity_type",)

    def event(self) -> tuple[str, dict[str, Any]]:
        return MARKER_RECORDED, {"seq": self.seq, "marker": "local_activity",
                                 "activity_type": self.activity_type}


class RecordPatch(Command):
    """`ctx.patched(id)` took the new path in a fresh execution: remember it in history."""

    patch_id: str = ""
    identity: ClassVar[tuple[str, ...]] = ("marker", "patch_id")

    def event(self) -> tuple[str, dict[str, Any]]:
        return MARKER_RECORDED, {"seq": self.seq, "marker": "patch", "patch_id": self.patch_id}


class CreateCallback(Command):
    """An external completion point; `secret` is minted by the decider, kept in history."""

    secret: str = ""
    timeout: float | None = None
    heartbeat_timeout: float | None = None

    def event(self) -> tuple[str, dict[str, Any]]:
        return CALLBACK_CREATED, {"seq": self.seq, "secret": self.secret,
                                  "timeout": self.timeout,
                                  "heartbeat_timeout": self.heartbeat_timeout}


class CompleteUpdate(Command):
    update_id: str = ""
    outcome: dict[str, Any] = rfield(default_factory=dict)  # {"result": ...} | {"failure": ...}
    identity: ClassVar[tuple[str, ...]] = ("update_id",)

    def event(self) -> tuple[str, dict[str, Any]]:
        return UPDATE_COMPLETED, {"seq": self.seq, "update_id": self.update_id, **self.outcome}


PARENT_CLOSE_POLICIES = ("terminate", "request_cancel", "abandon")


class StartChild(Command):
    workflow_type: str = ""
    args: list[Any] = rfield(default_factory=list)
    workflow_id: str = ""
    run_id: str = ""
    parent_close_policy: str = "terminate"
    identity: ClassVar[tuple[str, ...]] = ("workflow_type", "workflow_id")

    def event(self) -> tuple[str, dict[str, Any]]:
        return CHILD_INITIATED, {"seq": self.seq, "workflow_type": self.workflow_type,
                                 "workflow_id": self.workflow_id, "run_id": self.run_id,
                                 "args": self.args,
                                 "parent_close_policy": self.parent_close_policy}


class CancelChild(Command):
    """The parent stopped waiting for child `seq` (cancelled): ask the child to cancel."""

    def event(self) -> tuple[str, dict[str, Any]]:
        return CHILD_CANCEL_REQUESTED, {"seq": self.seq}


class StartTimer(Command):
    duration: float = 0.0
    fire_at: float = 0.0

    def event(self) -> tuple[str, dict[str, Any]]:
        return TIMER_STARTED, {"seq": self.seq, "duration": self.duration,
                               "fire_at": self.fire_at}


class CancelTimer(Command):
    def event(self) -> tuple[str, dict[str, Any]]:
        return TIMER_CANCELED, {"seq": self.seq}


class CompleteWorkflow(Command):
    result: Any = None

    def event(self) -> tuple[str, dict[str, Any]]:
        return COMPLETED, {"seq": self.seq, "result": self.result}


class FailWorkflow(Command):
    failure: dict[str, Any] = rfield(default_factory=dict)

    def event(self) -> tuple[str, dict[str, Any]]:
        return FAILED, {"seq": self.seq, "failure": self.failure}


class CancelWorkflow(Command):
    def event(self) -> tuple[str, dict[str, Any]]:
        return CANCELLED, {"seq": self.seq}


class ContinueAsNew(Command):
    args: list[Any] = rfield(default_factory=list)
    new_run_id: str = ""

    def event(self) -> tuple[str, dict[str, Any]]:
        return CONTINUED_AS_NEW, {"seq": self.seq, "args": self.args,
                                  "new_run_id": self.new_run_id}


# --- the portable history document (HTTP history, `ostinato replay`) ------------------------

def to_document(workflow_id: str, run_id: str, batches: list[Batch]) -> dict[str, Any]:
    """A run's history as JSON: flat events, plus the workflow-task boundaries replay needs."""
    events = []
    for batch in batches:
        for event in batch.to_events():
            events.append({**event.to_dict(), "task": batch.number})
    tasks = [{"number": b.number, "time": b.time, "decided": b.decided} for b in batches]
    return {"workflow_id": workflow_id, "run_id": run_id, "events": events, "tasks": tasks}


def from_document(doc: dict[str, Any]) -> list[Batch]:
    """Rebuild batches from `to_document` output (raises ValueError on malformed input)."""
    try:
        tasks = {t["number"]: t for t in doc["tasks"]}
        batches: dict[int, Batch] = {}
        for event in doc["events"]:
            number = event["task"]
            attrs = {k: v for k, v in event.items()
                     if k not in ("event_id", "event_type", "timestamp", "task")}
            if number not in batches:
                task = tasks[number]
                batches[number] = Batch(number, event["event_id"], task["time"], task["decided"],
                                        [])
            batches[number].events.append((event["event_type"], attrs))
        for number, task in tasks.items():  # batches that recorded no events
            batches.setdefault(number, Batch(number, 0, task["time"], task["decided"], []))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not an ostinato history document: missing {exc}") from None
    return [batches[n] for n in sorted(batches)]
