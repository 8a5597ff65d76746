"""The ports: what the engine and the client need from storage, delivery and scheduling.

Protocols, so the AWS adapters (`_aws`) and the in-memory backend (`_local`) implement them
without inheriting anything; the engine, the client, schedules and triggers see only these.
Records that cross a port (`Head`, `ScheduleRecord`) and the typed conflicts a port raises
live here too, so neither side imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

from .._core import history as h
from .._core import wire


# -- records ----------------------------------------------------------------------------------
@dataclass
class Head:
    """The current run of a workflow id, with what describe and list show."""

    workflow_id: str
    run_id: str
    workflow_type: str
    status: str
    start_time: float
    args: list[Any]
    close_time: float | None = None
    result: Any = None
    failure: dict[str, Any] | None = None
    custom_status: Any = None
    batch: int = 0
    task_failure: str | None = None
    continued_from: str | None = None
    deadline: float | None = None
    parent: dict[str, Any] | None = None
    #: the result was too large for the head: read it from the run's last batch
    result_spilled: bool = False


@dataclass
class ScheduleRecord:
    """A recurring schedule's definition and what its firings did so far."""

    name: str
    workflow_type: str
    args: list[Any]
    expression: str
    timezone: str
    overlap: str
    created: float
    anchor: float | None = None  # rate schedules count from here (Scheduler's StartDate)
    last_fire: float | None = None
    last_wid: str | None = None
    fired: int = 0
    skipped: int = 0


# -- typed conflicts ----------------------------------------------------------------------------
class StoreError(Exception):
    """Base of the storage port's typed errors."""


class AppendConflict(StoreError):
    """Another writer appended this batch number first: re-read and decide again."""


class StartConflict(StoreError):
    """The workflow id already has a RUNNING run (or any run, with `only_new`)."""

    def __init__(self, head: Head | None) -> None:
        super().__init__("workflow id already running")
        self.head = head


class ScheduleConflict(StoreError):
    """A schedule item was not in the state the conditional write expected."""


# -- ports --------------------------------------------------------------------------------------
class Store(Protocol):
    """Run histories, workflow heads, outcomes, heartbeats and schedule items.

    Every write is conditional; a failed condition is one of the typed conflicts above.
    Payloads pass the store's `Payloads` pipeline (`_engine/payloads.py`) on the way in and out.
    """

    #: the largest history batch `append` takes (`history.batch_limit`)
    max_batch_bytes: int

    def get_head(self, workflow_id: str) -> Head | None: ...
    def create_head(self, head: Head, replacing: str | None = None,
                    only_new: bool = False) -> None: ...
    def project(self, workflow_id: str, run_id: str, batch: int, state: dict[str, Any],
                task_failure: str | None = None) -> bool: ...
    def list_heads(self, status: str | None = None, workflow_type: str | None = None,
                   limit: int = 100, start_key: dict[str, Any] | None = None,
                   started_after: float | None = None, started_before: float | None = None,
                   ) -> tuple[list[Head], dict[str, Any] | None]: ...
    def load_batches(self, run_id: str, after: int = 0, consistent: bool = True,
                     ) -> list[h.Batch]: ...
    def history_page(self, run_id: str, after: int = 0, max_bytes: int | None = None,
                     consistent: bool = True) -> tuple[list[h.Batch], bool]: ...
    def last_batch(self, run_id: str) -> h.Batch | None: ...
    def append(self, run_id: str, batch: h.Batch) -> None: ...
    def iter_events(self, run_id: str) -> Iterator[h.Event]: ...
    def claim_callback(self, run_id: str, seq: int,
                       outcome: dict[str, Any]) -> dict[str, Any]: ...
    def callback_claim(self, run_id: str, seq: int) -> dict[str, Any] | None: ...
    def put_update_outcome(self, run_id: str, update_id: str,
                           outcome: dict[str, Any]) -> None: ...
    def update_outcome(self, run_id: str, update_id: str) -> dict[str, Any] | None: ...
    def save_heartbeat(self, run_id: str, seq: int, attempt: int, details: Any) -> bool:
        """Keep the details unless a later attempt saved some; True when the activity's
        cancellation was requested (read in the same write)."""
    def load_heartbeat(self, run_id: str, seq: int) -> Any: ...
    def heartbeat_state(self, run_id: str, seq: int) -> tuple[Any, bool]:
        """The last details and whether cancellation was requested (one read)."""
    def request_activity_cancel(self, run_id: str, seq: int) -> None:
        """Raise activity `seq`'s cancel flag (safe to repeat)."""
    # schedule items
    def create_schedule(self, record: ScheduleRecord) -> None: ...
    def get_schedule(self, name: str) -> ScheduleRecord | None: ...
    def list_schedules(self) -> list[ScheduleRecord]: ...
    def delete_schedule(self, name: str) -> bool: ...
    def claim_firing(self, name: str, fire_time: float, expected: float | None, wid: str,
                     skipped: bool) -> None: ...


class Scheduler(Protocol):
    """EventBridge Scheduler: one-time `at()` deliveries and recurring schedules."""

    def create_at(self, name: str, at: float, body: str) -> None:
        """Deliver `body` to the timer queue at `at` (idempotent by name)."""
    def delete_at(self, name: str) -> None:
        """Forget a one-time delivery (no error when it is gone)."""
    def put_recurring(self, name: str, expression: str, timezone: str,
                      start: float | None, body: str, description: str) -> None:
        """Create (or overwrite) a recurring schedule whose firings go to the trigger queue."""
    def delete_recurring(self, name: str) -> bool:
        """Delete a recurring schedule; False if there was none."""


#: Longest SQS DelaySeconds; a delivery due later goes through EventBridge Scheduler.
MAX_SQS_DELAY = 900


class Transport(Protocol):
    """Delivery: workflow tasks, activity tasks, timers; sends what an outbox says."""

    clock: Callable[[], float]

    def send_workflow_task(self, msg: wire.Message) -> None: ...
    def send_activity_task(self, task: wire.ActivityTask, delay: int = 0) -> None: ...
    def has_task_queue(self, task_queue: str) -> bool: ...
    def deliver_at(self, due: float, envelope: wire.Envelope, key: str) -> None: ...
    def forward(self, envelope: wire.Envelope) -> None: ...
    def cancel_at(self, key: str) -> None: ...
    def retry_soon(self, receipt_handle: str, seconds: int = 2) -> None: ...
    # messages an invocation received and never started (`_aws/budget.py`)
    def requeue(self, queue_arn: str, bodies: list[str]) -> list[int]: ...
    def release(self, receipt_handles: list[str]) -> None: ...


class PayloadStore(Protocol):
    """Large payloads kept outside history and messages (S3, `_aws/payloads.py`), written and
    read only by the `Payloads` pipeline, which checks each object's SHA-256."""

    def put(self, key: str, data: bytes) -> str:
        """Store `data` under `key`; returns the reference `get` takes."""
    def get(self, ref: str) -> bytes:
        """The bytes stored; `PayloadIntegrityError` naming `ref` if there are none."""


class EventBus(Protocol):
    """EventBridge PutEvents (the API's POST /events, the CLI's `event put`)."""

    def put_events(self, entries: list[dict[str, Any]]) -> dict[str, Any]: ...


# -- observing the engine -------------------------------------------------------------------------
class Metric:
    """The names of what the engine and the handlers count and time (`Observer`)."""

    WORKFLOWS_STARTED = "WorkflowsStarted"  # workflow_type
    #: closed runs, by status (workflow_type)
    WORKFLOWS_CLOSED = {h.Status.COMPLETED: "WorkflowsCompleted",
                        h.Status.FAILED: "WorkflowsFailed",
                        h.Status.TIMED_OUT: "WorkflowsTimedOut",
                        h.Status.CANCELLED: "WorkflowsCancelled",
                        h.Status.TERMINATED: "WorkflowsTerminated",
                        h.Status.CONTINUED_AS_NEW: "WorkflowsContinuedAsNew"}
    WORKFLOW_TASKS = "WorkflowTasks"  # decisions appended (workflow_type)
    #: from the first message's SQS SentTimestamp to the decider picking it up (workflow_type)
    WORKFLOW_TASK_SCHEDULE_TO_START = "WorkflowTaskScheduleToStart"
    WORKFLOW_TASK_DECIDE_TIME = "WorkflowTaskDecideTime"  # read, replay, write (workflow_type)
    WORKFLOW_TASK_FAILURES = "WorkflowTaskFailures"  # recorded task failures (workflow_type)
    NON_DETERMINISM_ERRORS = "NonDeterminismErrors"  # (workflow_type)
    ACTIVITY_ATTEMPTS = "ActivityAttempts"  # (activity_type)
    ACTIVITY_FAILURES = "ActivityFailures"  # failed attempts, timeouts included (activity_type)
    ACTIVITY_LATENCY = "ActivityLatency"  # one attempt's run time (activity_type)
    DEFERRALS = "WorkflowTaskDeferrals"  # messages handed back to SQS for later (RetryLater)
    UNTOUCHED = "BatchRecordsNotStarted"  # records a handler had no time left for


class Observer(Protocol):
    """What the engine reports about itself: counts, durations and trace spans.

    Dimensions name what a point is about (`workflow_type=`, `activity_type=`): a few fixed
    values, never ids. The AWS adapter (`_aws/observer.py`) writes CloudWatch metrics in
    embedded metric format and, when enabled, X-Ray subsegments; `NO_OBSERVER` does nothing.
    """

    def count(self, name: str, value: float = 1, **dimensions: str) -> None: ...
    def duration(self, name: str, seconds: float, **dimensions: str) -> None: ...
    def span(self, name: str) -> AbstractContextManager[Any]: ...
    def flush(self) -> None:
        """Publish what was recorded since the last flush (handlers call it per invocation)."""


class NullObserver:
    """The `Observer` that records nothing (the default everywhere but on Lambda)."""

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        pass

    def duration(self, name: str, seconds: float, **dimensions: str) -> None:
        pass

    def span(self, name: str) -> AbstractContextManager[Any]:
        return nullcontext()

    def flush(self) -> None:
        pass


NO_OBSERVER = NullObserver()
