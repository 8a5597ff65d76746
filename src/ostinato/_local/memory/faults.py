"""Fault injection on the memory backend: the `FaultInjector` of `_local.faults`, at the
calls a handler makes to the in-memory AWS instead of at botocore.

Every public call a handler makes to the memory table (the `Store` port) and to the SQS,
Scheduler, EventBridge and S3 clients is an eligible call; by its plan a call fails BEFORE it
acts (nothing happened) or AFTER (the effect is there, the caller never hears of it), with
the same connection errors botocore raises. A call made inside another eligible call (the
store calling itself) is not counted again.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import Any

from ..faults import FaultInjector, Plan
from .events import EventsClient
from .payloads import MemoryPayloads
from .scheduler import SchedulerClient
from .sqs import SqsClient
from .store import MemoryStore

#: (class, service name): every public method of these is an AWS call of that service.
TARGETS: tuple[tuple[type, str], ...] = (
    (MemoryStore, "dynamodb"), (SqsClient, "sqs"), (SchedulerClient, "scheduler"),
    (EventsClient, "events"), (MemoryPayloads, "s3"))
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("ostinato_mem_call",
                                                                default=False)


class MemoryFaultInjector(FaultInjector):
    """`FaultInjector` at the memory backend's calls (module docstring); it patches the
    memory classes for the whole process, so one injector of either kind at a time."""

    def __init__(self, plan: Plan, handlers_only: bool = True) -> None:
        super().__init__(plan, handlers_only)
        self._originals: list[tuple[type, str, Any]] = []

    def __enter__(self) -> MemoryFaultInjector:
        self._claim()
        for cls, service in TARGETS:
            for name, original in list(vars(cls).items()):
                if name.startswith("_") or not callable(original):
                    continue
                self._originals.append((cls, name, original))
                setattr(cls, name, self._wrap(original, service, name))
        return self

    def _wrap(self, original: Callable[..., Any], service: str,
              operation: str) -> Callable[..., Any]:
        injector = self

        @functools.wraps(original)
        def call(obj: Any, *args: Any, **kwargs: Any) -> Any:
            if _inside.get():  # the table calling itself: one call, counted once
                return original(obj, *args, **kwargs)

            def act() -> Any:
                token = _inside.set(True)
                try:
                    return original(obj, *args, **kwargs)
                finally:
                    _inside.reset(token)

            return injector._faulted(service, operation, kwargs, act)

        return call

    def __exit__(self, *exc: object) -> None:
        for cls, name, original in reversed(self._originals):
            setattr(cls, name, original)
        self._originals.clear()
        self._release()
