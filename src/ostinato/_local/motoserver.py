"""moto, made fit to stand in for AWS: one lock around request dispatch, a settable clock.

Measured on these machines: moto's conditional writes are not atomic (racing threads lose
updates) and its SQS answers 500s under concurrent consumers. Serialising dispatch through one
lock fixes both. Its SQS delays and visibility timeouts read `unix_time`; pointing that at a
virtual clock gives the test environment SQS semantics on virtual time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from typing import Any

_lock = threading.RLock()
_installed = False


REGION = "us-east-1"


def session() -> Any:
    """A boto3 session in the region every local stack lives in."""
    import boto3

    return boto3.Session(region_name=REGION)


class EnvironmentConflictError(RuntimeError):
    """Two test environments (or fault injectors) were used at the same time.

    They patch process-wide state (the installed runtime, moto's backends and SQS clock,
    botocore's API call), so only one can be in charge at a time.
    """


def serialize_dispatch() -> None:
    """Wrap moto's in-process request dispatcher (and its server's) in one global lock."""
    global _installed
    if _installed:
        return
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__

    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            return original(self, *args, **kwargs)

    BotocoreStubber.__call__ = locked  # type: ignore[method-assign]
    _installed = True


def dispatch_lock() -> threading.RLock:
    return _lock


class SqsClock:
    """Points moto's SQS time functions at `clock` while active."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._saved: tuple[Any, Any] | None = None

    def __enter__(self) -> SqsClock:
        import moto.sqs.models as sqs_models

        self._saved = (sqs_models.unix_time, sqs_models.unix_time_millis)
        sqs_models.unix_time = lambda *_: self.clock()  # type: ignore[assignment]
        sqs_models.unix_time_millis = lambda *_: self.clock() * 1000  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        import moto.sqs.models as sqs_models

        if self._saved is not None:
            sqs_models.unix_time, sqs_models.unix_time_millis = self._saved  # type: ignore[assignment]


def next_sqs_due(now: float, queue_names: Collection[str] | None = None) -> float | None:
    """The earliest future time at which a delayed or in-flight message becomes receivable
    (in the queues named `queue_names`, or in any)."""
    from moto.sqs.models import sqs_backends

    earliest: float | None = None
    with _lock:
        for region_backends in sqs_backends.values():
            for backend in region_backends.values():
                for queue in backend.queues.values():
                    if queue_names is not None and queue.name not in queue_names:
                        continue
                    for message in queue._messages:
                        t = max(message.delayed_until, message.visible_at) / 1000
                        if t > now and (earliest is None or t < earliest):
                            earliest = t
    return earliest
