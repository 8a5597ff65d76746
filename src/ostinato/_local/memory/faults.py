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
import random
import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ConnectionClosedError

from ..faults import Call, InjectedFault, Plan, _exempt, _in_handler
from ..motoserver import EnvironmentConflictError
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


class MemoryFaultInjector:
    """Context manager making memory-backend calls fail per `plan` (module docstring).

    It patches the memory classes for the whole process, so one at a time."""

    _active: MemoryFaultInjector | None = None
    _active_lock = threading.Lock()

    def __init__(self, plan: Plan, handlers_only: bool = True) -> None:
        self.plan = plan
        self.handlers_only = handlers_only
        self.calls: list[Call] = []
        self.injected: list[tuple[Call, str]] = []
        self._lock = threading.Lock()
        self._originals: list[tuple[type, str, Any]] = []

    @classmethod
    def seeded(cls, seed: int, rate: float, handlers_only: bool = True) -> MemoryFaultInjector:
        """Each call fails with probability `rate`, half before and half after it acts."""
        rng = random.Random(seed)

        def plan(call: Call) -> str | None:
            roll = rng.random()
            return "before" if roll < rate / 2 else "after" if roll < rate else None

        return cls(plan, handlers_only)

    def __enter__(self) -> MemoryFaultInjector:
        with MemoryFaultInjector._active_lock:
            if MemoryFaultInjector._active is not None:
                raise EnvironmentConflictError("another MemoryFaultInjector is active")
            MemoryFaultInjector._active = self
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
            in_handler = _in_handler.get()
            if (_inside.get() or _exempt.get()
                    or (injector.handlers_only and not in_handler)):
                return original(obj, *args, **kwargs)
            with injector._lock:
                record = Call(len(injector.calls), service, operation, in_handler, kwargs)
                injector.calls.append(record)
                when = injector.plan(record)
                if when:
                    injector.injected.append((record, when))
            if when == "before":
                raise InjectedFault(endpoint_url=f"injected://{service}/{operation}")
            token = _inside.set(True)
            try:
                result = original(obj, *args, **kwargs)
            finally:
                _inside.reset(token)
            if when == "after":
                raise ConnectionClosedError(endpoint_url=f"injected://{service}/{operation}")
            return result

        return call

    def __exit__(self, *exc: object) -> None:
        for cls, name, original in reversed(self._originals):
            setattr(cls, name, original)
        self._originals.clear()
        with MemoryFaultInjector._active_lock:
            if MemoryFaultInjector._active is self:
                MemoryFaultInjector._active = None
