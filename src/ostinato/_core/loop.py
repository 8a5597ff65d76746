"""A deterministic asyncio event loop for workflow code.

Ready callbacks run in the order they were scheduled; `time()` is the workflow's history time;
`call_at`/`call_later` do not wait: they ask the owner for a durable timer, and the timer's
callback runs when history says it fired. So `asyncio.sleep`, `wait_for`, `gather`, `wait`
and `create_task` behave the same on every replay.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import contextvars
from collections import deque
from collections.abc import Callable
from typing import Any


class DurableTimerHandle(asyncio.TimerHandle):
    """A timer whose firing is an event in history; `seq` is its command sequence number."""

    seq: int = 0


class WorkflowLoop(asyncio.AbstractEventLoop):
    """Runs workflow tasks until nothing is ready; never blocks, never reads a clock."""

    def __init__(
        self,
        start_timer: Callable[[DurableTimerHandle], None],
        cancel_timer: Callable[[DurableTimerHandle], None],
        register_task: Callable[[asyncio.Task[Any]], None] = lambda task: None,
    ) -> None:
        self._ready: deque[asyncio.Handle] = deque()
        self._now = 0.0
        self._start_timer = start_timer
        self._cancel_timer = cancel_timer
        self._register_task = register_task
        self._running = False
        self.errors: list[BaseException] = []

    # -- time ---------------------------------------------------------------------------
    def time(self) -> float:
        return self._now

    def set_time(self, now: float) -> None:
        self._now = max(self._now, now)

    # -- scheduling ---------------------------------------------------------------------
    def call_soon(self, callback: Callable[..., Any], *args: Any,
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any,
                   context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        return self.call_at(self._now + delay, callback, *args, context=context)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        handle = DurableTimerHandle(when, callback, args, self, context)
        self._start_timer(handle)
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        assert isinstance(handle, DurableTimerHandle)
        self._cancel_timer(handle)

    def fire(self, handle: DurableTimerHandle) -> None:
        """History says this timer fired: run its callback in order with the rest."""
        if not handle.cancelled():
            self._ready.append(handle)

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(self, coro: Any, *, name: str | None = None,
                    context: contextvars.Context | None = None) -> asyncio.Task[Any]:
        """A task, handed to the owner, which keeps it (asyncio's own references are weak)."""
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        self._register_task(task)
        return task

    # -- running ------------------------------------------------------------------------
    def run_ready(self) -> None:
        """Run callbacks until none is ready. The only way workflow code executes."""
        previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        self._running = True
        try:
            while self._ready:
                handle = self._ready.popleft()
                if not handle.cancelled():
                    handle._run()
        finally:
            self._running = False
            asyncio.events._set_running_loop(previous)

    def has_ready(self) -> bool:
        return bool(self._ready)

    # -- the rest of the loop interface, answered honestly -------------------------------
    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return False

    def get_debug(self) -> bool:
        return False

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, BaseException) and not isinstance(exc, asyncio.CancelledError):
            self.errors.append(exc)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)

    def _not_in_workflows(self, *_: Any, **__: Any) -> Any:
        raise RuntimeError("not available inside a workflow: use an activity")

    run_in_executor = getaddrinfo = getnameinfo = create_connection = _not_in_workflows
    create_server = subprocess_exec = subprocess_shell = add_reader = _not_in_workflows
    add_writer = sock_recv = sock_sendall = sock_connect = sock_accept = _not_in_workflows
    run_forever = run_until_complete = _not_in_workflows
