"""`WorkflowContext`: the only door from workflow code to the outside world.

Every method records a command or reads replayed state; none does I/O.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from . import converter
from .definitions import ActivityOptions, activity_definition, seconds, type_name
from .serde import MAX_STATUS_BYTES, encode_payload

if TYPE_CHECKING:
    from .instance import WorkflowInfo, WorkflowInstance


class ContinueAsNewRequest(BaseException):
    """Raised by `ctx.continue_as_new`; a BaseException so `except Exception` cannot eat it."""

    def __init__(self, args: list[Any]) -> None:
        super().__init__("continue as new")
        self.args_list = args


def plain_name(fn: Any) -> str:
    """The name a plain callable run as a local activity has in history."""
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{getattr(fn, '__module__', None) or '?'}.{qualname}"


def callback_token(workflow_id: str, run_id: str, seq: int, secret: str) -> str:
    """`<base64url of [workflow_id, run_id, seq]>.<secret>`: routable, unguessable."""
    where = base64.urlsafe_b64encode(json.dumps([workflow_id, run_id, seq]).encode())
    return where.decode().rstrip("=") + "." + secret


class Callback:
    """Returned by `ctx.create_callback`: hand out `token`, then `await` the outcome."""

    def __init__(self, token: str, future: asyncio.Future[Any]) -> None:
        self.token = token
        self._future = future

    def __await__(self) -> Any:
        return self._future.__await__()


class WorkflowContext:
    """Passed as the first argument of every workflow function."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance

    # -- activities ---------------------------------------------------------------------
    async def execute_activity(self, activity: Any, *args: Any, **options: Any) -> Any:
        """Run an activity on its task queue; await the result.

        Per-call `options` (task_queue, start_to_close_timeout, schedule_to_close_timeout,
        heartbeat_timeout, retry) override the decorator's. Raises `ActivityError` once
        retries are exhausted. The result is decoded by the activity's return annotation.
        """
        future, returns = self._schedule(activity, args, options, local=False)
        return converter.decode(await future, returns, "result of activity")

    async def execute_local_activity(self, activity: Any, *args: Any, **options: Any) -> Any:
        """Run a short activity inline in the decider; its outcome is recorded in history.

        `activity` is any callable (sync or async), decorated with @activity or not; a plain
        one is named by its module and qualified name in history, with default options
        overridden by `options`.
        """
        future, returns = self._schedule(activity, args, options, local=True)
        return converter.decode(await future, returns, "result of local activity")

    def _schedule(self, activity: Any, args: tuple[Any, ...], overrides: dict[str, Any],
                  local: bool) -> tuple[asyncio.Future[Any], Any]:
        """The activity's future and the hint its result is decoded by."""
        if isinstance(activity, str):
            registered = self._instance.activities.get(activity)
            base = registered.options if registered is not None else ActivityOptions()
            options = base.merged(overrides)
            name = activity
            fn = registered.fn if registered is not None else None
        elif local and getattr(activity, "__ostinato_activity__", None) is None:
            if not callable(activity):
                raise TypeError(f"{activity!r} is not callable")
            options = ActivityOptions().merged(overrides)
            name = plain_name(activity)
            tree = encode_payload(f"arguments of local activity {name!r}", list(args))
            return (self._instance.schedule_activity(name, tree, options.to_dict(), local,
                                                     fn=activity),
                    converter.signature(activity).returns)
        else:
            definition = activity_definition(activity)
            options = definition.options.merged(overrides)
            name = type_name(activity, "activity")
            fn = definition.fn
        # encoded here, so a value that cannot travel raises in the workflow's code
        tree = encode_payload(f"arguments of activity {name!r}", list(args))
        return (self._instance.schedule_activity(name, tree, options.to_dict(), local),
                converter.signature(fn).returns)

    # -- time ---------------------------------------------------------------------------
    async def sleep(self, duration: float | timedelta) -> None:
        """A durable timer: the run sleeps in history, not in a process."""
        await asyncio.sleep(seconds(duration) or 0)

    def now(self) -> datetime:
        """Deterministic time: when the current workflow task was decided (aware UTC)."""
        return self._instance.now()

    # -- waiting ------------------------------------------------------------------------
    async def wait_condition(self, predicate: Callable[[], Any],
                             timeout: float | timedelta | None = None) -> None:
        """Resume when `predicate()` is true; raise `TimeoutError` after `timeout`."""
        if predicate():
            return
        future = self._instance.loop.create_future()
        self._instance.conditions.append((predicate, future))
        await self._with_timeout(future, timeout)

    async def wait_for_signal(self, name: str, timeout: float | timedelta | None = None) -> Any:
        """Wait for the next signal `name` (earlier ones are buffered); return its argument."""
        found, value = self._instance.take_buffered_signal(name)
        if found:
            return value
        future = self._instance.loop.create_future()
        self._instance.signal_waiters[name].append(future)
        return await self._with_timeout(future, timeout)

    @staticmethod
    async def _with_timeout(future: asyncio.Future[Any], timeout: float | timedelta | None) -> Any:
        limit = seconds(timeout)
        if limit is None:
            return await future
        return await asyncio.wait_for(future, limit)

    # -- handlers -----------------------------------------------------------------------
    def on_signal(self, name: str, handler: Callable[..., Any]) -> None:
        """Call `handler(*args)` for every signal `name`, in arrival order (sync or async)."""
        self._instance.register_signal(name, handler)

    def on_query(self, name: str, handler: Callable[..., Any]) -> None:
        """Answer query `name` with `handler(*args)`; it must not change state."""
        self._instance.query_handlers[name] = handler

    def on_update(self, name: str, handler: Callable[..., Any],
                  validator: Callable[..., Any] | None = None) -> None:
        """Handle update `name`: `validator(*args)` may raise to reject it before anything is
        recorded; `handler(*args)` (sync or async: it may run activities and timers) returns
        the caller's result. A handler that raises fails the update, not the workflow."""
        self._instance.update_handlers[name] = (handler, validator)

    def set_status(self, status: Any) -> None:
        """A custom status (at most 32 KiB encoded), visible in describe and list without
        replay. Raises `PayloadTooLargeError` (or `DataConversionError`)."""
        self._instance.custom_status = encode_payload("custom status", status, MAX_STATUS_BYTES)

    # -- child workflows ------------------------------------------------------------------
    async def execute_child_workflow(self, workflow: Any, *args: Any, id: str | None = None,
                                     parent_close_policy: str = "terminate") -> Any:
        """Run a child workflow and await its result; raises `ChildWorkflowError`.

        `parent_close_policy`: what happens to the child if this workflow closes first:
        "terminate", "request_cancel" or "abandon". Cancelling the wait cancels the child.
        The result is decoded by the child workflow's return annotation when `workflow` is
        the function (a type name gives plain JSON).
        """
        workflow_type = type_name(workflow, "workflow")
        tree = encode_payload(f"arguments of child workflow {workflow_type!r}", list(args))
        result = await self._instance.start_child(workflow_type, tree, id, parent_close_policy)
        fn = None if isinstance(workflow, str) else getattr(workflow, "fn", workflow)
        return converter.decode(result, converter.signature(fn, skip=1).returns,
                                f"result of child workflow {workflow_type!r}")

    # -- external completion --------------------------------------------------------------
    def create_callback(self, timeout: float | timedelta | None = None,
                        heartbeat_timeout: float | timedelta | None = None) -> Callback:
        """A point anyone holding `cb.token` can complete or fail (HTTP or the client).

        `await cb` returns the result, raises `CallbackError` when failed and `TimeoutError`
        after `timeout` (or when no heartbeat came within `heartbeat_timeout`).
        """
        seq, secret, future = self._instance.create_callback(
            seconds(timeout), seconds(heartbeat_timeout))
        return Callback(callback_token(self.info.workflow_id, self.info.run_id, seq, secret),
                        future)

    # -- continue-as-new ----------------------------------------------------------------
    def continue_as_new(self, *args: Any) -> NoReturn:
        """End this run and start a fresh one with `args`: same workflow id, new run id,
        empty history (how eternal workflows keep their history small).

        Arguments too large to carry raise `PayloadTooLargeError` here, in the workflow."""
        raise ContinueAsNewRequest(encode_payload("continue-as-new arguments", list(args)))

    # -- versioning ---------------------------------------------------------------------
    def patched(self, patch_id: str) -> bool:
        """Versioning: True where the code reaches this point after the patch shipped.

        ```python
        if ctx.patched("charge-before-ship"):
            await ctx.execute_activity(charge, order)   # new behaviour
        await ctx.execute_activity(ship, order)
        ```
        Runs started before the patch replay with False (their history has no marker);
        new runs record a marker and get True, now and on every replay.
        """
        return self._instance.patched(patch_id)

    def deprecate_patch(self, patch_id: str) -> None:
        """Retire a patch once no run that predates it is left: keep only the new code path
        and call this where `patched()` was, so histories that recorded the marker still
        replay; remove the call once those runs are gone too."""
        self._instance.deprecate_patch(patch_id)

    # -- determinism helpers ------------------------------------------------------------
    def random(self) -> random.Random:
        """A `random.Random` seeded from the run: the same numbers on every replay."""
        return self._instance.random

    def uuid4(self) -> uuid.UUID:
        """A deterministic version-4 UUID."""
        return uuid.UUID(int=self._instance.random.getrandbits(128), version=4)

    @property
    def info(self) -> WorkflowInfo:
        """Run metadata, and `history_length` / `is_continue_as_new_suggested()` as of now."""
        return self._instance.current_info()

    @property
    def logger(self) -> logging.LoggerAdapter:  # type: ignore[type-arg]
        """A logger that stays quiet while history is replayed."""
        return self._instance.logger

    @property
    def is_replaying(self) -> bool:
        return self._instance.replaying
