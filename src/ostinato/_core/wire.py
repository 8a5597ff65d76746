"""The wire protocol: workflow-task messages, activity tasks, envelopes and outbox entries.

One frozen record (`_core.records`) per kind, one encoding (`encode`/`decode`). Every other
module builds and reads these types; only this module knows the JSON shape. The JSON keeps
its compact, historical keys (`k`, `wid`, `rid`, `mk`, `op` ...) because outboxes are stored
in history batches and messages may be in flight across a deployment: a new release must
read them.

- `Message`: what the FIFO workflow-task queue carries (group = workflow id); `key` is the
  message key, its SQS deduplication id and the id a batch records as consumed.
- `ActivityTask`: what an activity queue carries.
- `Envelope`: a delivery due later (timer queue body, Scheduler target input).
- `Outbox` entries: what a batch asks to be done after it is written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypeVar

from .records import Record, field

# ============================================================ workflow-task messages
#: Python field name -> JSON key, where they differ.
_WIRE_NAMES = {"workflow_id": "wid", "run_id": "rid", "key": "mk", "update_id": "uid",
               "child_workflow_id": "child", "sent_at": "at"}
_PY_NAMES = {v: k for k, v in _WIRE_NAMES.items()}


class Message(Record):
    """A workflow-task message: wakes the decider of one run."""

    KIND: ClassVar[str] = ""
    workflow_id: str
    run_id: str
    key: str

    def encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": self.KIND}
        defaults = self._DEFAULTS
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is None and name in defaults and defaults[name] is None:
                continue  # optional and absent: not on the wire
            out[_WIRE_NAMES.get(name, name)] = value
        return out

    def to(self, run_id: str, key: str) -> Message:
        """The same message addressed to another run under another key."""
        return self.replace(run_id=run_id, key=key)  # type: ignore[no-any-return]


class Start(Message):
    """Run the first workflow task of a run whose head is (about to be) written."""

    KIND = "start"


class Wake(Message):
    """Decide again (a failed task's retry, a local activity's back-off)."""

    KIND = "wake"


class ActivityOutcome(Message):
    """An activity's final attempt: a result, a failure (timed out or not), or `cancelled`
    (it stopped for the workflow's cancel request)."""

    KIND = "activity"
    seq: int = 0
    attempt: int = 1
    result: Any = None
    failure: dict[str, Any] | None = None
    timed_out: bool | None = None
    cancelled: bool | None = None


class ActivityTimeout(Message):
    """An activity's schedule-to-close deadline passed."""

    KIND = "activity_timeout"
    seq: int = 0


class TimerFired(Message):
    KIND = "timer"
    seq: int = 0


class Signal(Message):
    KIND = "signal"
    name: str = ""
    args: list[Any] = field(default_factory=list)


class Cancel(Message):
    """Request cooperative cancellation."""

    KIND = "cancel"
    reason: str | None = None


class Terminate(Message):
    """End the run now, without running workflow code."""

    KIND = "terminate"
    reason: str | None = None


class WorkflowTimeout(Message):
    """The workflow execution timeout was reached."""

    KIND = "workflow_timeout"


class ChildOutcome(Message):
    """A child run closed; sent to its parent."""

    KIND = "child"
    seq: int = 0
    child_workflow_id: str = ""
    status: str = ""
    result: Any = None
    failure: dict[str, Any] | None = None


class Update(Message):
    KIND = "update"
    update_id: str = ""
    name: str = ""
    args: list[Any] = field(default_factory=list)


class CallbackSettled(Message):
    """A callback's outcome was (or is about to be) claimed; `sent_at` bounds the wait for it."""

    KIND = "callback"
    seq: int = 0
    sent_at: float = 0.0


class CallbackTimeout(Message):
    KIND = "callback_timeout"
    seq: int = 0


class CallbackHeartbeat(Message):
    KIND = "callback_heartbeat"
    seq: int = 0


class CallbackHeartbeatCheck(Message):
    """Has the callback heard a heartbeat within its heartbeat timeout?"""

    KIND = "callback_heartbeat_check"
    seq: int = 0


MESSAGE_KINDS: dict[str, type[Message]] = {
    cls.KIND: cls for cls in (Start, Wake, ActivityOutcome, ActivityTimeout, TimerFired, Signal,
                              Cancel, Terminate, WorkflowTimeout, ChildOutcome, Update,
                              CallbackSettled, CallbackTimeout, CallbackHeartbeat,
                              CallbackHeartbeatCheck)}

#: Requests a caller addressed to a run; a run that continued as new passes them on.
FORWARDED_KINDS = (Signal, Cancel, Terminate, Update)


class WireError(ValueError):
    """A body that is not a message of this protocol (a poison message)."""


M = TypeVar("M")


def _build(cls: type[M], body: dict[str, Any], skip: tuple[str, ...]) -> M:
    names = set(cls.FIELDS)  # type: ignore[attr-defined]
    values = {_PY_NAMES.get(k, k): v for k, v in body.items() if k not in skip}
    unknown = set(values) - names
    if unknown:
        raise WireError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise WireError(f"{cls.__name__}: {exc}") from None


def decode_message(body: Any) -> Message:
    """The message a JSON body holds; `WireError` if it is not one."""
    if not isinstance(body, dict):
        raise WireError("a workflow-task message is a JSON object")
    cls = MESSAGE_KINDS.get(body.get("k"))  # type: ignore[arg-type]
    if cls is None:
        raise WireError(f"unknown message kind {body.get('k')!r}")
    msg = _build(cls, body, ("k",))
    if not isinstance(msg.workflow_id, str) or not isinstance(msg.run_id, str) \
            or not isinstance(msg.key, str):
        raise WireError("wid, rid and mk must be strings")
    return msg


class Delivery(Record):
    """A message as SQS handed it over: when it was first sent, how often received."""

    message: Message
    sent_at: float | None = None
    receives: int = 1


# ============================================================ activity tasks
class ActivityTask(Record):
    """One attempt of an activity, as its task queue carries it."""

    workflow_id: str
    run_id: str
    seq: int
    activity_type: str
    args: list[Any]
    options: dict[str, Any]
    attempt: int
    scheduled_at: float

    def encode(self) -> dict[str, Any]:
        return {"wid": self.workflow_id, "rid": self.run_id, "seq": self.seq,
                "activity_type": self.activity_type, "args": self.args,
                "options": self.options, "attempt": self.attempt,
                "scheduled_at": self.scheduled_at}

    @classmethod
    def decode(cls, body: Any) -> ActivityTask:
        if not isinstance(body, dict):
            raise WireError("an activity task is a JSON object")
        return _build(cls, body, ())

    @property
    def task_queue(self) -> str:
        return str(self.options.get("task_queue", "default"))

    def next_attempt(self) -> ActivityTask:
        return self.replace(attempt=self.attempt + 1)  # type: ignore[no-any-return]


# ============================================================ deliveries due later
class Envelope(Record):
    """Something to deliver later: a workflow-task message, or an activity task."""

    msg: Message | ActivityTask

    def encode(self) -> dict[str, Any]:
        if isinstance(self.msg, ActivityTask):
            return {"to": "activity", "queue": self.msg.task_queue, "msg": self.msg.encode()}
        return {"to": "workflow", "msg": self.msg.encode()}

    @classmethod
    def decode(cls, body: dict[str, Any]) -> Envelope:
        if body.get("to") == "activity":
            return cls(ActivityTask.decode(body.get("msg")))
        if body.get("to") == "workflow":
            return cls(decode_message(body.get("msg")))
        raise WireError(f"unknown envelope destination {body.get('to')!r}")


class Due(Record):
    """A timer-queue body: deliver `envelope` at `due`; `key` names the delivery."""

    due: float
    key: str
    envelope: Envelope

    def encode(self) -> dict[str, Any]:
        return {"due": self.due, "key": self.key, **self.envelope.encode()}

    @classmethod
    def decode(cls, body: Any) -> Due:
        if not isinstance(body, dict) or not isinstance(body.get("due"), int | float) \
                or not isinstance(body.get("key"), str):
            raise WireError("a due delivery has a numeric 'due' and a string 'key'")
        return cls(float(body["due"]), body["key"], Envelope.decode(body))


# ============================================================ outbox entries
class Outbox(Record, ABC):
    """One thing a batch asks to be done once it is written (at least once)."""

    OP: ClassVar[str] = ""

    @abstractmethod
    def encode(self) -> dict[str, Any]:
        """The entry as a stored batch holds it (`decode_outbox` reads it back)."""


class SendMessage(Outbox):
    OP = "workflow"
    msg: Message

    def encode(self) -> dict[str, Any]:
        return {"op": self.OP, "msg": self.msg.encode()}


class SendActivity(Outbox):
    OP = "activity"
    task: ActivityTask

    def encode(self) -> dict[str, Any]:
        return {"op": self.OP, "queue": self.task.task_queue, "msg": self.task.encode()}


class DeliverAt(Outbox):
    """Deliver a message (or activity task) at `due`; `key` names the delivery."""

    OP = "at"
    due: float
    key: str
    envelope: Envelope

    def encode(self) -> dict[str, Any]:
        return {"op": self.OP, "due": self.due, "key": self.key,
                "envelope": self.envelope.encode()}


class CancelAt(Outbox):
    """Forget a delivery due later; `scheduler` when it went through Scheduler."""

    OP = "cancel_at"
    key: str
    scheduler: bool

    def encode(self) -> dict[str, Any]:
        return {"op": self.OP, "key": self.key, "scheduler": self.scheduler}


class CancelActivity(Outbox):
    """Raise the cancel flag of activity `seq`, which its running attempt's heartbeat reads."""

    OP = "cancel_activity"
    run_id: str
    seq: int

    def encode(self) -> dict[str, Any]:
        return {"op": self.OP, "rid": self.run_id, "seq": self.seq}


class ContinueRun(Outbox):
    """Hand the workflow id to the next run of the chain and wake it."""

    OP = "continue"
    workflow_id: str
    run_id: str
    new_run_id: str
    workflow_type: str
    args: list[Any]
    deadline: float | None = None
    parent: dict[str, Any] | None = None

    def encode(self) -> dict[str, Any]:
        return {"op": self.OP, "wid": self.workflow_id, "rid": self.run_id,
                "new_rid": self.new_run_id, "args": self.args,
                "workflow_type": self.workflow_type, "deadline": self.deadline,
                "parent": self.parent}


class StartChild(Outbox):
    """Start a child run (its id derived from the parent's, so once)."""

    OP = "start_child"
    workflow_id: str
    run_id: str
    workflow_type: str
    args: list[Any]
    parent: dict[str, Any]  # {"wid", "rid", "seq"}

    def encode(self) -> dict[str, Any]:
        return {"op": self.OP, "wid": self.workflow_id, "rid": self.run_id,
                "workflow_type": self.workflow_type, "args": self.args, "parent": self.parent}


class UpdateOutcome(Outbox):
    """Record how an update ended, for its waiting caller."""

    OP = "update_outcome"
    run_id: str
    update_id: str
    outcome: dict[str, Any]

    def encode(self) -> dict[str, Any]:
        return {"op": self.OP, "rid": self.run_id, "uid": self.update_id,
                "outcome": self.outcome}


def reject_update(run_id: str, update_id: str, reason: str) -> UpdateOutcome:
    """The one way an update is refused: its caller gets `UpdateRejectedError(reason)`."""
    return UpdateOutcome(run_id, update_id, {"rejected": reason})


def decode_outbox(entry: dict[str, Any]) -> Outbox:
    """An outbox entry read back from a stored batch."""
    match entry.get("op"):
        case "workflow":
            return SendMessage(decode_message(entry["msg"]))
        case "activity":
            return SendActivity(ActivityTask.decode(entry["msg"]))
        case "at":
            return DeliverAt(float(entry["due"]), entry["key"], Envelope.decode(entry["envelope"]))
        case "cancel_at":
            return CancelAt(entry["key"], bool(entry["scheduler"]))
        case "cancel_activity":
            return CancelActivity(entry["rid"], int(entry["seq"]))
        case "continue":
            return ContinueRun(entry["wid"], entry["rid"], entry["new_rid"],
                                 entry["workflow_type"], entry["args"], entry.get("deadline"),
                                 entry.get("parent"))
        case "start_child":
            return StartChild(entry["wid"], entry["rid"], entry["workflow_type"], entry["args"],
                              entry["parent"])
        case "update_outcome":
            return UpdateOutcome(entry["rid"], entry["uid"], entry["outcome"])
    raise WireError(f"unknown outbox operation {entry.get('op')!r}")
