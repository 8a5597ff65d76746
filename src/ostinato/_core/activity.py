"""Running one activity attempt: `activity_context()`, heartbeats and per-attempt timeouts."""

from __future__ import annotations

import contextvars
import inspect
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

    Without timeouts the call runs inline. With them it runs in a helper thread, and an
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
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = invoke()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name=f"activity-{ctx.info.activity_type}")
    started = time.monotonic()
    thread.start()
    while True:
        thread.join(0.02)
        if not thread.is_alive():
            break
        now = time.monotonic()
        overrun = None
        if timeout is not None and now - started >= timeout:
            overrun = timeout_message or f"activity exceeded start_to_close_timeout of {timeout:g}s"
        elif heartbeat_timeout is not None and now - ctx.last_beat >= heartbeat_timeout:
            overrun = f"activity missed its heartbeat_timeout of {heartbeat_timeout:g}s"
        if overrun is not None:
            ctx._abandon(overrun)
            raise TimeoutError(overrun)
    if "error" in box:
        raise box["error"]
    return box.get("result")


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
