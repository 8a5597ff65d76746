"""Fault injection at the AWS SDK boundary, for tests.

`FaultInjector` wraps every botocore API call (boto3 and pynamodb alike) and, by a plan, raises
a connection error either BEFORE the request is sent (nothing happened) or AFTER it executed
(the effect is there, the caller never hears of it) — the two ways a Lambda sees AWS fail, and
also how a Lambda that dies between two calls looks to the system. It spares the emulated
services' own calls (`exempt`). A plan may also answer "throttle" (the call is refused, before
it acts, with the throttling error the service returns: `throttled`) or "kill before" / "kill
after" (Lambda stops the invocation there, for its timeout or a crash: `InvocationKilled`,
which the pollers take as an invocation that never returned).

`DroppedConnections` (in `probe.py`) spares nothing but the test looking from outside
(`looking`): it hooks botocore's events, so the emulated services' calls are dropped too.
"""

from __future__ import annotations

import contextvars
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from .motoserver import EnvironmentConflictError

_in_handler: contextvars.ContextVar[bool] = contextvars.ContextVar("ostinato_in_handler",
                                                                  default=False)


_exempt: contextvars.ContextVar[bool] = contextvars.ContextVar("ostinato_exempt", default=False)


@contextmanager
def exempt() -> Iterator[None]:
    """Calls made by emulated AWS services themselves (e.g. Scheduler firing): never faulted."""
    token = _exempt.set(True)
    try:
        yield
    finally:
        _exempt.reset(token)


_looking: contextvars.ContextVar[bool] = contextvars.ContextVar("ostinato_looking",
                                                               default=False)


@contextmanager
def looking() -> Iterator[None]:
    """Calls made by the test from outside the system (waiting for a result, starting or
    signalling a workflow in a test's own driver): never faulted, by any plan or probe."""
    token = _looking.set(True)
    try:
        with exempt():
            yield
    finally:
        _looking.reset(token)


def is_looking() -> bool:
    return _looking.get()


@contextmanager
def running() -> Iterator[None]:
    """The environment running its services and handlers: whatever the caller was (a test
    looking, an exempt emulation), what runs inside is subject to the fault plans again."""
    looked, exempted = _looking.set(False), _exempt.set(False)
    try:
        yield
    finally:
        _exempt.reset(exempted)
        _looking.reset(looked)


@contextmanager
def handler_scope() -> Iterator[None]:
    """Mark calls made while a Lambda handler runs (the emulator wraps invocations in it)."""
    token = _in_handler.set(True)
    try:
        yield
    finally:
        _in_handler.reset(token)


@dataclass(frozen=True)
class Call:
    index: int
    service: str
    operation: str
    in_handler: bool
    params: dict[str, Any]


Plan = Callable[[Call], str | None]  # -> None | "before" | "after" | "throttle" | "kill ..."


class InjectedFault(EndpointConnectionError):
    pass


class InvocationKilled(BaseException):
    """Lambda stopped the invocation here (its timeout, or the runtime crashed): nothing after
    this point runs, and no handler code can catch it (a BaseException, as a kill is)."""


#: The error code (and HTTP status) each service throttles with, as botocore raises it.
THROTTLE_CODES = {"dynamodb": ("ProvisionedThroughputExceededException", 400),
                  "sqs": ("RequestThrottled", 400), "scheduler": ("ThrottlingException", 429),
                  "events": ("ThrottlingException", 400), "s3": ("SlowDown", 503)}


def throttled(service: str, operation: str) -> ClientError:
    """The throttling refusal `service` answers `operation` with (after the SDK's retries)."""
    code, status = THROTTLE_CODES.get(service, ("ThrottlingException", 400))
    return ClientError({"Error": {"Code": code, "Message": "Rate exceeded (injected)"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class FaultInjector:
    """Context manager making AWS calls fail per `plan` (see the module docstring).

    It patches botocore for the whole process, so one at a time: entering a second while
    one is active raises `EnvironmentConflictError`.
    """

    _active: FaultInjector | None = None
    _active_lock = threading.Lock()

    def __init__(self, plan: Plan, handlers_only: bool = True) -> None:
        self.plan = plan
        self.handlers_only = handlers_only
        self.calls: list[Call] = []
        self.injected: list[tuple[Call, str]] = []
        self._lock = threading.Lock()
        self._original: Any = None

    @classmethod
    def seeded(cls, seed: int, rate: float, handlers_only: bool = True) -> FaultInjector:
        """Each call fails with probability `rate`, half before and half after it executes."""
        rng = random.Random(seed)

        def plan(call: Call) -> str | None:
            roll = rng.random()
            if roll < rate / 2:
                return "before"
            if roll < rate:
                return "after"
            return None

        return cls(plan, handlers_only)

    @classmethod
    def at(cls, index: int, when: str) -> FaultInjector:
        """Fail only the `index`-th eligible call, `when` = "before" or "after"."""
        return cls(lambda call: when if call.index == index else None)

    def _claim(self) -> None:
        with FaultInjector._active_lock:
            if FaultInjector._active is not None:
                raise EnvironmentConflictError(
                    "another FaultInjector is active: it patches process-wide, and two at "
                    "once would fault each other's calls and restore the wrong function on "
                    "exit; exit it first or give one plan both behaviours")
            FaultInjector._active = self

    def _release(self) -> None:
        with FaultInjector._active_lock:
            if FaultInjector._active is self:
                FaultInjector._active = None

    def _faulted(self, service: str, operation: str, params: dict[str, Any],
                 call: Callable[[], Any]) -> Any:
        """`call()`, failed before or after it acts when the plan says so (and the call is
        eligible: not exempt, and made by a handler unless `handlers_only` is off)."""
        in_handler = _in_handler.get()
        if _exempt.get() or (self.handlers_only and not in_handler):
            return call()
        with self._lock:
            record = Call(len(self.calls), service, operation, in_handler, params)
            self.calls.append(record)
            when = self.plan(record)
            if when:
                self.injected.append((record, when))
        if when == "before":
            raise InjectedFault(endpoint_url=f"injected://{service}/{operation}")
        if when == "throttle":
            raise throttled(service, operation)
        if when == "kill before":
            raise InvocationKilled(f"{service} {operation}")
        result = call()
        if when == "after":
            raise ConnectionClosedError(endpoint_url=f"injected://{service}/{operation}")
        if when == "kill after":
            raise InvocationKilled(f"{service} {operation}")
        return result

    def __enter__(self) -> FaultInjector:
        self._claim()
        injector = self
        original = BaseClient._make_api_call
        self._original = original

        def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            return injector._faulted(client.meta.service_model.service_name, operation, params,
                                     lambda: original(client, operation, params))

        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        BaseClient._make_api_call = self._original  # type: ignore[method-assign]
        self._release()
