"""Activities: one attempt per task-queue message, and local activities run in the decider.

An attempt's outcome is reported to the decider as a workflow-task message (recorded exactly
once there); a retryable failure schedules the next attempt as a new delayed message instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core import converter, keys, wire
from .._core.activity import HEARTBEAT_THROTTLE, ActivityContext, ActivityInfo, call_activity
from .._core.definitions import ActivityOptions, App
from .._core.errors import ActivityCancelledError, PayloadTooLargeError, UnknownTypeError
from .._core.history import RunLocalActivity
from .._core.retry import backoff, should_retry
from .._core.serde import dumps, encode_payload, to_failure
from .ports import NO_OBSERVER, Metric, Observer, Store, Transport

if TYPE_CHECKING:
    from .._core.replay import LocalOutcome


def failure_of(exc: BaseException, attempt: int) -> dict[str, Any]:
    failure = to_failure(exc)
    failure["attempt"] = attempt
    return failure


def longest_attempt(task: wire.ActivityTask, now: float) -> float | None:
    """The longest this attempt may run by its own options (None: they set no bound)."""
    options = ActivityOptions.from_dict(task.options)
    bounds = [options.start_to_close_timeout] if options.start_to_close_timeout else []
    if options.schedule_to_close_timeout is not None:
        bounds.append(max(0.0, task.scheduled_at + options.schedule_to_close_timeout - now))
    return min(bounds) if bounds else None


class ActivityWorker:
    """Runs activity attempts delivered by an activity queue.

    Cancellation: the decider raises an activity's cancel flag (`Store.request_activity_cancel`,
    from the outbox, after the append that recorded ActivityTaskCancelRequested). A running
    attempt reads it with each heartbeat write and `heartbeat()` raises
    `ActivityCancelledError`; escaping, that is reported as ActivityTaskCanceled. An attempt
    that catches it and returns, or raises something else, reports that outcome, which is
    final: nothing is retried once cancellation was requested (as Temporal's server does). A
    next attempt due after the request never runs: it finds the flag where it reads the
    heartbeat details and reports the activity cancelled.
    """

    def __init__(self, app: App, store: Store, transport: Transport,
                 clock: Callable[[], float]) -> None:
        self.app = app
        self.store = store
        self.transport = transport
        self.clock = clock
        self.observer: Observer = NO_OBSERVER
        #: seconds between two heartbeat writes of one attempt
        self.heartbeat_throttle = HEARTBEAT_THROTTLE

    def handle(self, task: wire.ActivityTask, receive_count: int = 1,
               time_left: float | None = None) -> None:
        """Run one activity attempt; report the outcome or schedule the next attempt.

        `time_left`: the seconds the invocation running it has left. An attempt still running
        then is reported as timed out by this worker, before Lambda stops the invocation with
        the rest of its batch (which would come back looking like dead workers).
        """
        options = ActivityOptions.from_dict(task.options)
        attempt = task.attempt
        now = self.clock()
        deadline = (task.scheduled_at + options.schedule_to_close_timeout
                    if options.schedule_to_close_timeout is not None else None)
        rid, seq = task.run_id, task.seq
        info = ActivityInfo(task.workflow_id, rid, seq, task.activity_type, attempt,
                            options.task_queue, task.scheduled_at, options.heartbeat_timeout)
        ctx = ActivityContext(info, None,
                              save=lambda d: self.store.save_heartbeat(rid, seq, attempt, d),
                              throttle=self.heartbeat_throttle)
        kind = {"activity_type": task.activity_type}
        self.observer.count(Metric.ACTIVITY_ATTEMPTS, 1, **kind)
        try:
            if receive_count > 1:
                # The worker that received this before died or overran: that attempt failed
                # with a timeout. Retrying it as a new message (below) keeps a worker that
                # keeps dying on the retry policy instead of walking the message to the DLQ.
                raise TimeoutError(f"attempt {attempt} did not finish: its worker died or "
                                   "ran past the Lambda timeout")
            if attempt > 1:
                ctx.heartbeat_details, cancelled = self.store.heartbeat_state(rid, seq)
                if cancelled:  # requested while this attempt waited: no further attempts
                    self._report(task, attempt=attempt - 1, cancelled=True)
                    return
            definition = self.app.activity(task.activity_type)
            timeout = options.start_to_close_timeout
            if deadline is not None:
                remaining = deadline - now
                if remaining <= 0:
                    raise TimeoutError("activity exceeded its schedule_to_close_timeout")
                timeout = remaining if timeout is None else min(timeout, remaining)
            message = None
            if time_left is not None and (timeout is None or time_left < timeout):
                timeout = time_left
                message = (f"attempt {attempt} was still running when its Lambda invocation "
                           f"ran out of time ({time_left:.0f}s left when it started)")
            began = time.perf_counter()
            try:
                with self.observer.span(f"activity {task.activity_type}"):
                    args = converter.signature(definition.fn).decode_args(
                        task.args, f"arguments of activity {task.activity_type!r}")
                    result = call_activity(definition.fn, args, ctx, timeout,
                                           options.heartbeat_timeout, message)
            finally:
                self.observer.duration(Metric.ACTIVITY_LATENCY, time.perf_counter() - began,
                                       **kind)
            result = encode_payload(f"result of activity {task.activity_type!r}", result)
        except Exception as exc:
            ctx.flush()
            if isinstance(exc, ActivityCancelledError) and ctx.is_cancelled:
                self._report(task, cancelled=True)
                return
            self.observer.count(Metric.ACTIVITY_FAILURES, 1, **kind)
            failure = failure_of(exc, attempt)
            retry_at = self.clock() + backoff(options.retry, attempt)
            retryable = (not isinstance(exc, UnknownTypeError | PayloadTooLargeError)
                         and not ctx.is_cancelled
                         and should_retry(options.retry, attempt, failure)
                         and (deadline is None or retry_at < deadline))
            if retryable:
                self.transport.deliver_at(retry_at, wire.Envelope(task.next_attempt()),
                                          keys.activity_retry(rid, seq, attempt + 1))
                return
            self._report(task, failure=failure, timed_out=isinstance(exc, TimeoutError))
            return
        self._report(task, result=result)

    def _report(self, task: wire.ActivityTask, result: Any = None,
                failure: dict[str, Any] | None = None, timed_out: bool = False,
                cancelled: bool = False, attempt: int | None = None) -> None:
        key = keys.activity_result(task.run_id, task.seq)
        attempt = task.attempt if attempt is None else attempt
        if cancelled:
            msg = wire.ActivityOutcome(task.workflow_id, task.run_id, key, seq=task.seq,
                                       attempt=attempt, cancelled=True)
        elif failure is None:
            msg = wire.ActivityOutcome(task.workflow_id, task.run_id, key, seq=task.seq,
                                       attempt=attempt, result=result)
        else:
            msg = wire.ActivityOutcome(task.workflow_id, task.run_id, key, seq=task.seq,
                                       attempt=attempt, failure=failure,
                                       timed_out=timed_out)
        self.transport.send_workflow_task(msg)


#: What one workflow task may spend on local activities before it records what it has and
#: leaves the rest to the next task (as Temporal heartbeats a workflow task): this much JSON
#: of markers (a batch holds at most `history.MAX_BATCH_BYTES`) and this much wall time (the
#: decider's Lambda has 60 s, and starts a workflow group with 15 s left). A loop of 50,000
#: local activities then records about 10 batches instead of one that can never be written.
LOCAL_TASK_BYTES = 1_000_000
LOCAL_TASK_SECONDS = 10.0


class LocalActivities:
    """Runs local-activity attempts inline in the decider's invocation."""

    def __init__(self, app: App, clock: Callable[[], float]) -> None:
        self.app = app
        self.clock = clock

    def budget(self) -> Callable[[RunLocalActivity, int], LocalOutcome]:
        """A runner for one workflow task: `run` until the task has recorded
        `LOCAL_TASK_BYTES` of markers or spent `LOCAL_TASK_SECONDS`, then defer every further
        attempt (the first attempt of a task always runs, so a run always moves on)."""
        max_bytes, max_seconds = LOCAL_TASK_BYTES, LOCAL_TASK_SECONDS
        spent = {"bytes": 0, "ran": 0}
        began = time.monotonic()

        from .._core.replay import LocalOutcome  # only the decider (local activities) replays

        def run(cmd: RunLocalActivity, attempt: int) -> LocalOutcome:
            if spent["ran"] and (spent["bytes"] >= max_bytes
                                 or time.monotonic() - began >= max_seconds):
                return LocalOutcome(attempt, retry_at=self.clock(), deferred=True)
            outcome = self.run(cmd, attempt)
            spent["ran"] += 1
            if outcome.resolved:
                spent["bytes"] += len(dumps(outcome.marker(cmd)).encode())
            return outcome

        return run

    def run(self, cmd: RunLocalActivity, attempt: int) -> LocalOutcome:
        """Run one attempt; failures retry per its policy."""
        from .._core.replay import LocalOutcome  # only the decider (local activities) replays

        options = ActivityOptions.from_dict(cmd.options)
        now = self.clock()
        try:
            fn = cmd.fn if cmd.fn is not None else self.app.activity(cmd.activity_type).fn
            info = ActivityInfo("", "", cmd.seq, cmd.activity_type, attempt,
                                options.task_queue, now, None, local=True)
            ctx = ActivityContext(info, None)
            what = f"local activity {cmd.activity_type!r}"
            args = converter.signature(fn).decode_args(cmd.args, f"arguments of {what}")
            result = call_activity(fn, args, ctx, options.start_to_close_timeout, None)
            result = encode_payload(f"result of {what}", result)
            return LocalOutcome(attempt, result=result)
        except Exception as exc:
            failure = failure_of(exc, attempt)
            if not isinstance(exc, UnknownTypeError) and should_retry(options.retry, attempt,
                                                                     failure):
                return LocalOutcome(attempt, retry_at=now + backoff(options.retry, attempt))
            return LocalOutcome(attempt, failure=failure)
