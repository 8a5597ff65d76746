"""Running one activity attempt: `activity_context()`, heartbeats and per-attempt timeouts."""

from __future__ import annotations

import contextvars
import inspect
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import converter
from .errors import ActivityCancelledError
from .serde import encode_payload

#: Seconds between two heartbeat writes of one attempt, by default (Temporal throttles too):
#: a heartbeat inside the window only updates the details the next write will carry.
HEARTBEAT_THROTTLE = 2.0

_current: contextvars.ContextVar[ActivityContext] = contextvars.ContextVar("ostinato_activity")


@dataclass(frozen=True)
class ActivityInfo:
    """Metadata of the running activity attempt."""

    workflow_id: str
    run_id: str
    activity_id: int
    activity_type: str
    attempt: int
    task_queue: str
    scheduled_time: float
    heartbeat_timeout: float | None
    local: bool = False


class ActivityContext:
    """What `ostinato.activity_context()` returns inside an activity."""

    def __init__(self, info: ActivityInfo, heartbeat_details: Any,
                 save: Callable[[Any], bool | None] | None = None,
                 throttle: float = HEARTBEAT_THROTTLE) -> None:
        self.info = info
        self.heartbeat_details = heartbeat_details
        self._save = save
        self._throttle = throttle
        self._last_saved = float("-inf")
        self._unsaved: tuple[Any] | None = None
        self._flush_lock = threading.RLock()  # the worker flushes too when an attempt ends
        self._abandoned: str | None = None
        self._cancelled = False
        self.last_beat = time.monotonic()

    @property
    def is_cancelled(self) -> bool:
        """True once a heartbeat write learned that the workflow requested cancellation."""
        return self._cancelled

    def heartbeat(self, details: Any = None) -> None:
        """Report liveness (resets the heartbeat timeout) and progress for the next attempt.

        Writes are throttled (one per `HEARTBEAT_THROTTLE` seconds; the latest details win);
        each write also reads the activity's cancel flag. Raises `ActivityCancelledError`
        once one has seen it (this heartbeat's write or an earlier one), and on every
        heartbeat after that. Raises `TimeoutError` once the worker has abandoned this
        attempt for overrunning a timeout: its thread may still be running, but its details
        are the next attempt's now.
        """
        with self._flush_lock:
            if self._abandoned is not None:
                raise TimeoutError(f"attempt {self.info.attempt} of activity "
                                   f"{self.info.activity_type!r} was abandoned: {self._abandoned}")
            self.last_beat = time.monotonic()
            self._unsaved = (encode_payload("heartbeat details", details),)
            if self._save is not None and self.last_beat - self._last_saved >= self._throttle:
                self.flush()
            if self._cancelled:
                raise ActivityCancelledError(
                    f"activity {self.info.activity_type!r} (seq {self.info.activity_id}) was "
                    "cancelled by its workflow")

    def flush(self) -> None:
        """Save the latest unsaved details (at most one save in flight at a time), and note
        the cancel flag the save read back."""
        with self._flush_lock:
            if self._abandoned is not None:
                return
            pending, self._unsaved = self._unsaved, None
            if self._save is not None and pending is not None:
                if self._save(pending[0]):
                    self._cancelled = True
                self._last_saved = time.monotonic()

    def heartbeat_details_as(self, type: Any) -> Any:
        """The previous attempt's heartbeat details decoded as `type` (a dataclass, a pydantic
        model, `list[Item]`, ...); None when it left none. `heartbeat_details` is plain JSON."""
        if self.heartbeat_details is None:
            return None
        return converter.decode(self.heartbeat_details, type, "heartbeat details")

    def _abandon(self, reason: str) -> None:
        """The worker gives up on this attempt: save the details it last reported, then save
        nothing more, so the next attempt starts from exactly those and a thread still running
        this one can never overwrite them (the store refuses only an attempt lower than the one
        that saved last, not an equal one)."""
        with self._flush_lock:  # waits for a save in flight; later heartbeats wait, then raise
            try:
                self.flush()
            finally:
                self._abandoned = reason


def activity_context() -> ActivityContext:
    """The context of the activity attempt running in this thread or task."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("activity_context() called outside an activity") from None


def call_activity(fn: Callable[..., Any], args: list[Any], ctx: ActivityContext,
                  timeout: float | None, heartbeat_timeout: float | None,
                  timeout_message: str | None = None) -> Any:
    """Run `fn(*args)` with `ctx` current; raise TimeoutError when a timeout passes.

    Without timeouts the call runs inline. With them it runs in a worker thread (`_POOL`), and an
    attempt that overruns is abandoned (reported as timed out) while its thread finishes;
    from then on its heartbeats save nothing and raise `TimeoutError` (`ActivityContext._abandon`).
    `timeout_message` says what `timeout` was, when it is not the start_to_close_timeout.
    """

    def invoke() -> Any:
        token = _current.set(ctx)
        try:
            outcome = fn(*args)
            if inspect.isawaitable(outcome):
                import asyncio  # only async activities need it

                return asyncio.run(_awaited(outcome))
            return outcome
        finally:
            _current.reset(token)

    if timeout is None and heartbeat_timeout is None:
        return invoke()
    job = _Job(invoke, f"activity-{ctx.info.activity_type}")
    started = time.monotonic()
    _POOL.submit(job)
    while not job.done.acquire(timeout=GUARD_POLL):
        now = time.monotonic()
        overrun = None
        if timeout is not None and now - started >= timeout:
            overrun = timeout_message or f"activity exceeded start_to_close_timeout of {timeout:g}s"
        elif heartbeat_timeout is not None and now - ctx.last_beat >= heartbeat_timeout:
            overrun = f"activity missed its heartbeat_timeout of {heartbeat_timeout:g}s"
        if overrun is not None:
            ctx._abandon(overrun)
            raise TimeoutError(overrun)
    if job.error is not None:
        raise job.error
    return job.result


#: Seconds between two checks of a guarded attempt's timeouts while it runs.
GUARD_POLL = 0.02
#: Idle guard threads kept for the next attempts; more finishing at once simply exit.
MAX_IDLE_WORKERS = 8


class _Job:
    """One guarded attempt handed to a worker thread; `done` is released when it ends."""

    __slots__ = ("call", "context", "done", "error", "name", "result")

    def __init__(self, call: Callable[[], Any], name: str) -> None:
        self.call = call
        self.name = name
        self.context = contextvars.copy_context()  # the caller's, as the job runs it
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None


class _WorkerPool:
    """The threads guarded attempts run in, reused: starting a thread per attempt cost more
    than most activities. A job goes to an idle worker, or to a new one when none is idle, so
    an abandoned attempt (its thread still running) never holds up the next one. Each job runs
    in a copy of its caller's `contextvars` context (as `asyncio.to_thread` does): what the
    handler set holds inside the attempt (its log keys, a fault injector's scope, so a
    heartbeat's write is faulted like any other call), and nothing one attempt sets is seen
    by the next."""

    def __init__(self, max_idle: int = MAX_IDLE_WORKERS) -> None:
        self.max_idle = max_idle
        self._reset()

    def _reset(self) -> None:
        """Start empty (also in a forked child, which has none of the parent's threads)."""
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # workers waiting for a job, less the jobs queued for them

    def submit(self, job: _Job) -> None:
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        self._jobs.put(job)
        if spawn:
            threading.Thread(target=self._work, daemon=True, name=job.name).start()

    def _work(self) -> None:
        me = threading.current_thread()
        stay = True
        while stay:
            job = self._jobs.get()
            me.name = job.name
            try:
                job.result = job.context.run(job.call)
            except BaseException as exc:
                job.error = exc
            with self._lock:  # idle again before the caller can hand out its next attempt
                stay = self._idle < self.max_idle
                if stay:
                    self._idle += 1
            job.done.release()
            del job


_POOL = _WorkerPool()
os.register_at_fork(after_in_child=_POOL._reset)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
