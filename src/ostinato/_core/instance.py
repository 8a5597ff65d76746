"""One live workflow execution in memory: the loop, pending futures, signals, queries.

The instance knows nothing of storage or time sources. It is fed inbound events (`apply`),
runs workflow code until it blocks (`run`), and hands out the commands that code issued
(`take_commands`). `_replay` drives it through history; the decider and the query path use that.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from . import converter, keys
from . import history as h
from .context import ContinueAsNewRequest, WorkflowContext
from .definitions import ActivityDefinition
from .errors import (
    ActivityCancelledError,
    ActivityError,
    ApplicationError,
    CallbackError,
    ChildWorkflowError,
    PayloadTooLargeError,
    QueryRejectedError,
    UpdateRejectedError,
)
from .loop import DurableTimerHandle, WorkflowLoop
from .meter import SUGGEST_CONTINUE_AS_NEW_BYTES, SUGGEST_CONTINUE_AS_NEW_EVENTS, HistoryMeter
from .serde import encode_payload, from_failure, to_failure


@dataclass(frozen=True)
class WorkflowInfo:
    """Run metadata, as `ctx.info` shows it."""

    workflow_id: str
    run_id: str
    workflow_type: str
    attempt: int = 1
    start_time: datetime | None = None
    parent: dict[str, str] | None = None
    continued_from: str | None = None
    #: events in history at this point of the run (the same on every replay of it): every
    #: earlier workflow task's, then what the current one applied so far (inbound events,
    #: local activity markers); as of when `ctx.info` was read
    history_length: int = 0
    _size: Callable[[], int] | None = field(default=None, repr=False, compare=False)

    @property
    def history_size(self) -> int:
        """Bytes of JSON of those `history_length` events (as stored, before compression)."""
        return 0 if self._size is None else self._size()

    def is_continue_as_new_suggested(self) -> bool:
        """True once history holds 4,096 events or 4 MiB (Temporal's thresholds; see
        `_core.meter`): time to `ctx.continue_as_new(...)` with the state to carry on."""
        return (self.history_length >= SUGGEST_CONTINUE_AS_NEW_EVENTS
                or self.history_size >= SUGGEST_CONTINUE_AS_NEW_BYTES)


class WorkflowInstance:
    """State of one run as the workflow code sees it (see the module docstring)."""

    def __init__(self, fn: Callable[..., Any], info: WorkflowInfo,
                 activities: Mapping[str, ActivityDefinition] | None = None) -> None:
        self.info = info
        self.activities = activities or {}
        self.loop = WorkflowLoop(self._start_timer, self._cancel_timer,  # type: ignore[abstract]
                                 self._register_task)
        self._tasks: dict[asyncio.Task[Any], None] = {}  # running tasks, strongly referenced
        self._finished_tasks: list[asyncio.Task[Any]] = []  # in completion order
        self.replaying = False
        self._seq = 0
        self._commands: list[h.Command] = []
        self._activities: dict[int, asyncio.Future[Any]] = {}
        self._activity_types: dict[int, str] = {}
        self._local: dict[int, h.RunLocalActivity] = {}
        self._timers: dict[int, DurableTimerHandle] = {}
        self.signal_handlers: dict[str, Callable[..., Any]] = {}
        self.signal_buffer: dict[str, deque[list[Any]]] = defaultdict(deque)
        self.signal_waiters: dict[str, deque[asyncio.Future[Any]]] = defaultdict(deque)
        self.query_handlers: dict[str, Callable[..., Any]] = {}
        self.update_handlers: dict[str, tuple[Callable[..., Any], Callable[..., Any] | None]] = {}
        self.conditions: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self.custom_status: Any = None
        self.patches: dict[str, bool] = {}
        #: while replaying a task: patch ids whose markers that task recorded
        self.recorded_patch_ids: set[str] = set()
        #: while replaying a task: callback secrets it recorded, by sequence number
        self.recorded_callbacks: dict[int, str] = {}
        #: mints callback secrets in fresh executions (the decider injects one)
        self.new_secret: Callable[[], str] | None = None
        self._callbacks: dict[int, asyncio.Future[Any]] = {}
        self._children: dict[int, asyncio.Future[Any]] = {}
        self.cancel_requested = False
        self.closed: h.Command | None = None
        self.terminated = False
        self._fn = fn
        self._main: asyncio.Task[Any] | None = None
        self._main_ran = False
        self.random = random.Random(info.run_id)
        self.meter = HistoryMeter()
        self.ctx = WorkflowContext(self)
        self.logger = _ReplaySafeLogger(self, info)

    # -- sequence and commands ----------------------------------------------------------
    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def command(self, cmd: h.Command) -> None:
        if self.closed is None:
            self._commands.append(cmd)

    def take_commands(self) -> list[h.Command]:
        commands, self._commands = self._commands, []
        return commands

    # -- durable operations the context asks for ----------------------------------------
    def schedule_activity(self, activity_type: str, args: list[Any],
                          options: dict[str, Any], local: bool,
                          fn: Any = None,
                          cancellation_type: str = "try_cancel") -> asyncio.Future[Any]:
        seq = self.next_seq()
        future: asyncio.Future[Any]
        if local:
            future = self.loop.create_future()
        else:
            future = ActivityFuture(self.loop, cancellation_type,
                                    lambda: self.command(h.RequestCancelActivity(seq)))
        self._activities[seq] = future
        self._activity_types[seq] = activity_type
        if local:
            local_cmd = h.RunLocalActivity(seq, activity_type, args, options, fn=fn)
            self._local[seq] = local_cmd
            self.command(local_cmd)
        else:
            self.command(h.ScheduleActivity(seq, activity_type, args, options))
        return future

    def start_child(self, workflow_type: str, args: list[Any], workflow_id: str | None,
                    parent_close_policy: str) -> asyncio.Future[Any]:
        if parent_close_policy not in h.PARENT_CLOSE_POLICIES:
            raise ValueError(f"parent_close_policy must be one of {h.PARENT_CLOSE_POLICIES}")
        seq = self.next_seq()
        child_id = workflow_id or f"{self.info.workflow_id}-child-{seq}"
        run_id = keys.child_run_id(self.info.run_id, seq)
        future = self.loop.create_future()
        self._children[seq] = future

        def stopped_waiting(done: asyncio.Future[Any]) -> None:
            if done.cancelled() and self.closed is None:
                self.command(h.CancelChild(seq))

        future.add_done_callback(stopped_waiting)
        self.command(h.StartChild(seq, workflow_type, args, child_id, run_id,
                                  parent_close_policy))
        return future

    def _settle_child(self, etype: str, attrs: dict[str, Any]) -> None:
        future = self._children.get(attrs["seq"])
        if future is None or future.done():
            return
        if etype == h.CHILD_COMPLETED:
            future.set_result(attrs.get("result"))
            return
        cause = from_failure(attrs["failure"]) if attrs.get("failure") else None
        status = attrs.get("status", h.Status.FAILED)
        future.set_exception(ChildWorkflowError(
            f"child workflow {attrs.get('workflow_id', attrs['seq'])} {status.lower()}"
            + (f": {cause}" if cause else ""), cause))

    def create_callback(self, timeout: float | None,
                        heartbeat_timeout: float | None) -> tuple[int, str, asyncio.Future[Any]]:
        seq = self.next_seq()
        if self.replaying:
            secret = self.recorded_callbacks.get(seq, "")
        else:
            if self.new_secret is None:
                raise RuntimeError("callbacks can only be created by the decider")
            secret = self.new_secret()
        future = self.loop.create_future()
        self._callbacks[seq] = future
        self.command(h.CreateCallback(seq, secret, timeout, heartbeat_timeout))
        return seq, secret, future

    def patched(self, patch_id: str) -> bool:
        """True for executions that reach this point with the patch shipped (see the context)."""
        if patch_id not in self.patches:
            taken = patch_id in self.recorded_patch_ids if self.replaying else True
            self.patches[patch_id] = taken
            if taken:
                self.command(h.RecordPatch(self.next_seq(), patch_id))
        return self.patches[patch_id]

    def deprecate_patch(self, patch_id: str) -> None:
        """Accept the marker where a replayed history has it (keeping sequence numbers
        aligned); record nothing in new executions."""
        if patch_id not in self.patches:
            self.patches[patch_id] = True
            if self.replaying and patch_id in self.recorded_patch_ids:
                self.command(h.RecordPatch(self.next_seq(), patch_id))

    def _start_timer(self, handle: DurableTimerHandle) -> None:
        handle.seq = self.next_seq()
        self._timers[handle.seq] = handle
        duration = max(0.0, handle.when() - self.loop.time())
        self.command(h.StartTimer(handle.seq, duration, handle.when()))

    def _cancel_timer(self, handle: DurableTimerHandle) -> None:
        if self._timers.pop(handle.seq, None) is not None:
            self.command(h.CancelTimer(handle.seq))

    def current_info(self) -> WorkflowInfo:
        """`ctx.info`: the run's metadata with the history length at this point."""
        length, meter = self.meter.length, self.meter
        return replace(self.info, history_length=length, _size=lambda: meter.size(length))

    def is_pending_local(self, seq: int) -> bool:
        return seq in self._local and not self._activities[seq].done()

    @property
    def pending_local_activities(self) -> list[h.RunLocalActivity]:
        return [cmd for seq, cmd in self._local.items() if not self._activities[seq].done()]

    # -- tasks --------------------------------------------------------------------------
    def _register_task(self, task: asyncio.Task[Any]) -> None:
        """Keep every task the workflow's loop runs, and note when each one finishes.

        asyncio holds tasks weakly, and reports a failure nobody retrieved only when the
        task is garbage-collected, so whether (and in which workflow task) such a failure
        counted used to depend on the collector's timing. Here a done-callback records each
        finished task, and `_unobserved_failure` decides from those records alone.
        """
        self._tasks[task] = None
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)
        if task is not self._main and not task.cancelled():
            self._finished_tasks.append(task)

    def _fail_on_error(self, task: asyncio.Task[Any]) -> None:
        """Done-callback of the tasks running async signal and update handlers: nothing can
        await those, so an error escaping one fails the workflow at once."""
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self.loop.errors.append(error)

    def _unobserved_failure(self) -> BaseException | None:
        """The first error (in completion order) of a task the workflow started and never
        awaited, gathered or asked for its `exception()` / `result()`.

        Such an error fails the workflow when the workflow function returns (or continues as
        new): a fire-and-forget `asyncio.create_task(...)` that raises is never silently
        dropped, as asyncio would drop it (after a log line) once collected. While the function
        still runs, a failed task may yet be awaited, so it fails nothing until then; a task
        still running when the function returns is abandoned, as in Temporal. Replays see
        the same records, so the outcome never depends on the garbage collector.
        """
        for task in self._finished_tasks:
            if task._log_traceback:  # an exception nobody retrieved (asyncio's own flag)
                return task.exception()
        return None

    # -- inbound events -----------------------------------------------------------------
    def apply(self, etype: str, attrs: dict[str, Any]) -> None:
        """Apply one inbound event (or a local-activity marker) to the workflow's state."""
        self.meter.applied((etype, attrs))
        match etype:
            case h.STARTED:
                self._main = self.loop.create_task(self._run_main(attrs.get("args") or []))
                self._main_ran = False
            case h.ACTIVITY_COMPLETED:
                self._resolve(attrs["seq"], attrs.get("result"), None)
            case h.ACTIVITY_FAILED | h.ACTIVITY_TIMED_OUT:
                self._resolve(attrs["seq"], None, attrs["failure"])
            case h.ACTIVITY_CANCELED:
                self._activity_cancelled(attrs["seq"])
            case h.MARKER_RECORDED if attrs.get("marker") == "local_activity":
                self._local.pop(attrs["seq"], None)
                self._resolve(attrs["seq"], attrs.get("result"), attrs.get("failure"))
            case h.TIMER_FIRED:
                handle = self._timers.pop(attrs["seq"], None)
                if handle is not None:
                    self.loop.fire(handle)
            case h.SIGNALED:
                self._deliver_signal(attrs["name"], list(attrs.get("args") or []))
            case h.CANCEL_REQUESTED:
                self.cancel_requested = True
                if self._main is not None and not self._main.done():
                    self._main.cancel()
            case h.TERMINATED | h.TIMED_OUT:
                self.terminated = True
            case h.CALLBACK_COMPLETED | h.CALLBACK_FAILED | h.CALLBACK_TIMED_OUT:
                self._settle_callback(etype, attrs)
            case h.CHILD_COMPLETED | h.CHILD_FAILED:
                self._settle_child(etype, attrs)
            case h.UPDATE_ACCEPTED:
                self.ensure_started()
                self._run_update(attrs["update_id"], attrs["name"], list(attrs.get("args") or []))
            case _:
                raise ValueError(f"not an inbound event: {etype}")

    def _resolve(self, seq: int, result: Any, failure: dict[str, Any] | None) -> None:
        future = self._activities.get(seq)
        if future is None or future.done():
            return
        if failure is None:
            future.set_result(result)
            return
        cause = from_failure(failure)
        activity_type = self._activity_types.get(seq, "")
        future.set_exception(ActivityError(
            f"activity {activity_type!r} (seq {seq}) failed: {cause}", cause,
            activity_type=activity_type, activity_id=seq, attempt=failure.get("attempt", 0)))

    def _activity_cancelled(self, seq: int) -> None:
        """The attempt reported it stopped for the cancel request: a wait_cancellation_completed
        await raises CancelledError now (the others raised it when they were cancelled)."""
        future = self._activities.get(seq)
        if future is None or future.done():
            return
        if isinstance(future, ActivityFuture) and future.cancel_requested:
            future.confirm_cancelled()
            return
        activity_type = self._activity_types.get(seq, "")
        cause = ActivityCancelledError(f"activity {activity_type!r} (seq {seq}) was cancelled")
        future.set_exception(ActivityError(str(cause), cause, activity_type=activity_type,
                                           activity_id=seq))

    # -- updates --------------------------------------------------------------------------
    def validate_update(self, name: str, args: list[Any]) -> None:
        """Raise `UpdateRejectedError` if the update is unknown or its validator refuses it."""
        if name not in self.update_handlers:
            known = ", ".join(sorted(self.update_handlers)) or "none"
            raise UpdateRejectedError(f"unknown update {name!r} (registered: {known})")
        handler, validator = self.update_handlers[name]
        what = f"arguments of update {name!r}"
        try:  # arguments the handler cannot take are refused like a validator's no
            converter.signature(handler).decode_args(args, what)
            if validator is not None:
                validator(*converter.signature(validator).decode_args(args, what))
        except Exception as exc:
            raise UpdateRejectedError(str(exc) or type(exc).__name__) from exc

    def _run_update(self, update_id: str, name: str, args: list[Any]) -> None:
        handler = self.update_handlers[name][0]

        def finish(outcome: dict[str, Any]) -> None:
            if "result" in outcome:  # a result too large to carry fails the update, not the run
                try:
                    outcome = {"result": encode_payload(f"result of update {name!r}",
                                                        outcome["result"])}
                except (PayloadTooLargeError, ApplicationError) as exc:
                    outcome = {"failure": to_failure(exc)}
            self.command(h.CompleteUpdate(self.next_seq(), update_id, outcome))

        try:
            value = handler(*converter.signature(handler).decode_args(
                args, f"arguments of update {name!r}"))
        except Exception as exc:
            finish({"failure": to_failure(exc)})
            return
        if not inspect.isawaitable(value):
            finish({"result": value})
            return

        async def run() -> None:
            try:
                finish({"result": await value})
            except Exception as exc:
                finish({"failure": to_failure(exc)})

        self.loop.create_task(run()).add_done_callback(self._fail_on_error)

    def _settle_callback(self, etype: str, attrs: dict[str, Any]) -> None:
        future = self._callbacks.get(attrs["seq"])
        if future is None or future.done():
            return
        if etype == h.CALLBACK_COMPLETED:
            future.set_result(attrs.get("result"))
        elif etype == h.CALLBACK_TIMED_OUT:
            future.set_exception(TimeoutError(f"callback {attrs['seq']} timed out "
                                              f"({attrs.get('timeout_type', 'timeout')})"))
        else:
            cause = from_failure(attrs["failure"])
            future.set_exception(CallbackError(f"callback {attrs['seq']} failed: {cause}", cause))

    # -- signals ------------------------------------------------------------------------
    def _deliver_signal(self, name: str, args: list[Any]) -> None:
        handler = self.signal_handlers.get(name)
        if handler is not None:
            self._call_handler(name, handler, args)
            return
        waiters = self.signal_waiters[name]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(_signal_value(args))
                return
        self.signal_buffer[name].append(args)

    def _call_handler(self, name: str, handler: Callable[..., Any], args: list[Any]) -> None:
        try:
            decoded = converter.signature(handler).decode_args(
                args, f"arguments of signal {name!r}")
        except ApplicationError as exc:
            # As Temporal does: a signal whose arguments do not fit the handler is dropped
            # (it stays in history as received), so no sender can fail the run with bad data.
            self.logger.warning("signal %r dropped: %s", name, exc)
            return
        outcome = handler(*decoded)
        if inspect.isawaitable(outcome):
            self.loop.create_task(outcome).add_done_callback(  # type: ignore[arg-type]
                self._fail_on_error)

    def register_signal(self, name: str, handler: Callable[..., Any]) -> None:
        self.signal_handlers[name] = handler
        buffered = self.signal_buffer.pop(name, deque())
        for args in buffered:
            self._call_handler(name, handler, args)

    def take_buffered_signal(self, name: str) -> tuple[bool, Any]:
        buffered = self.signal_buffer.get(name)
        if buffered:
            return True, _signal_value(buffered.popleft())
        return False, None

    # -- running ------------------------------------------------------------------------
    async def _run_main(self, args: list[Any]) -> Any:
        decoded = converter.signature(self._fn, skip=1).decode_args(args, "workflow arguments")
        return await self._fn(self.ctx, *decoded)

    def ensure_started(self) -> None:
        """Run the workflow function to its first wait if it has not run yet, so an update
        that arrives with the start (update-with-start, or sent right after it) finds the
        handlers the code registers first. Replay calls it at the same point."""
        if self._main is not None and not self._main_ran:
            self.run()

    def run(self) -> None:
        """Run workflow code until it waits on something only history can provide."""
        if self._main is not None:
            self._main_ran = True
        while True:
            try:
                self.loop.run_ready()
            except Exception as exc:  # a signal handler or callback raised synchronously
                self.loop.errors.append(exc)
            if not self._check_conditions():
                break
        self._check_closed()

    def _check_conditions(self) -> bool:
        progressed = False
        for pred, future in list(self.conditions):
            if future.done():
                self.conditions.remove((pred, future))
                continue
            if pred():
                future.set_result(True)
                self.conditions.remove((pred, future))
                progressed = True
        return progressed or self.loop.has_ready()

    def _check_closed(self) -> None:
        if self.closed is not None or self._main is None:
            return
        if self.loop.errors:
            exc = self.loop.errors[0]
            self._close(h.FailWorkflow(self.next_seq(), to_failure(exc)))
            return
        if not self._main.done():
            return
        if self._main.cancelled():
            if self.cancel_requested:
                self._close(h.CancelWorkflow(self.next_seq()))
            else:
                err = ApplicationError("workflow task was cancelled without a cancel request")
                self._close(h.FailWorkflow(self.next_seq(), to_failure(err)))
            return
        error = self._main.exception()
        if error is None or isinstance(error, ContinueAsNewRequest):
            error = self._unobserved_failure() or error
        if isinstance(error, ContinueAsNewRequest):
            new_run = keys.continued_run_id(self.info.run_id)
            self._close(h.ContinueAsNew(self.next_seq(), error.args_list, new_run))
        elif isinstance(error, asyncio.CancelledError) and self.cancel_requested:
            self._close(h.CancelWorkflow(self.next_seq()))
        elif error is not None:
            self._close(h.FailWorkflow(self.next_seq(), to_failure(error)))
        else:
            try:  # a result too large to carry fails the run, deterministically, with the reason
                result = encode_payload("workflow result", self._main.result())
            except (PayloadTooLargeError, ApplicationError) as too_large:
                self._close(h.FailWorkflow(self.next_seq(), to_failure(too_large)))
                return
            self._close(h.CompleteWorkflow(self.next_seq(), result))

    def _close(self, cmd: h.Command) -> None:
        self._commands.append(cmd)
        self.closed = cmd

    # -- queries ------------------------------------------------------------------------
    def query(self, name: str, args: list[Any]) -> Any:
        """The answer of query handler `name` to `args`, encoded as a JSON tree."""
        handler = self.query_handlers.get(name)
        if handler is None:
            known = ", ".join(sorted(self.query_handlers)) or "none"
            raise QueryRejectedError(f"unknown query {name!r} (registered: {known})")
        try:
            value = handler(*converter.signature(handler).decode_args(
                args, f"arguments of query {name!r}"))
            return converter.encode(value, f"result of query {name!r}")
        except Exception as exc:
            raise QueryRejectedError(f"query {name!r} failed: {exc}") from exc

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.loop.time(), UTC)

    def checkpoint(self) -> tuple[Any, ...]:
        """What a query handler could change through the context (sequence numbers, commands,
        the seeded random, the custom status, patches), to `restore` after it."""
        return (self._seq, list(self._commands), self.random.getstate(), self.custom_status,
                dict(self.patches))

    def restore(self, saved: tuple[Any, ...]) -> None:
        self._seq, commands, random_state, self.custom_status, patches = saved
        self._commands, self.patches = list(commands), dict(patches)
        self.random.setstate(random_state)


class ActivityFuture(asyncio.Future[Any]):
    """What an awaited activity is: cancelling the task awaiting it cancels the activity.

    By `cancellation_type` (Temporal's meanings): "try_cancel" records the cancel request
    (`request()`, which the outbox turns into the flag the attempt's heartbeat reads) and
    cancels the await at once; "wait_cancellation_completed" records it and keeps the await
    pending until the activity reports it was cancelled (`confirm_cancelled`), completed or
    failed, whichever outcome comes; "abandon" records nothing and cancels the await at once.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, cancellation_type: str,
                 request: Callable[[], None]) -> None:
        super().__init__(loop=loop)
        self.cancellation_type = cancellation_type
        self.cancel_requested = False
        self._request = request

    def cancel(self, msg: Any = None) -> bool:
        if self.done():
            return False
        if not self.cancel_requested:
            self.cancel_requested = True
            if self.cancellation_type != "abandon":
                self._request()
        if self.cancellation_type == "wait_cancellation_completed":
            return True  # the awaiting task stays cancelled-pending until the outcome comes
        return super().cancel(msg)

    def confirm_cancelled(self) -> None:
        """The activity reported its cancellation: cancel the await for real."""
        super().cancel()


def _signal_value(args: list[Any]) -> Any:
    if not args:
        return None
    return args[0] if len(args) == 1 else list(args)


class _ReplaySafeLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Logs only when the code runs for the first time, never while replaying."""

    def __init__(self, instance: WorkflowInstance, info: WorkflowInfo) -> None:
        super().__init__(logging.getLogger("ostinato.workflow"),
                         {"workflow_id": info.workflow_id, "run_id": info.run_id})
        self._instance = instance

    def isEnabledFor(self, level: int) -> bool:
        return not self._instance.replaying and self.logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self._instance.replaying:
            super().log(level, msg, *args, **kwargs)
