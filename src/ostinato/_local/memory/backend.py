"""One in-memory AWS for one environment: its table, queues, schedules, bus and bucket.

`MemoryBackend.session()` stands in for a boto3 session where the local stack is built
(`_local/template.create`, `_local/eventbus.create_rules`), so the memory stack is made from
the same template.yaml as the moto one, with the same names, URLs and ARNs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..._engine.payloads import Payloads
from .events import MemoryEventBridge
from .payloads import MemoryPayloads
from .scheduler import MemoryScheduler
from .sqs import MemorySqs
from .store import MemoryStore


class _Tables:
    """CreateTable: the one table is the `MemoryStore` (its indexes are built in)."""

    def create_table(self, **_: Any) -> dict[str, Any]:
        return {}


class _Buckets:
    """CreateBucket: the payload bucket is the one `MemoryPayloads`."""

    def create_bucket(self, **_: Any) -> dict[str, Any]:
        return {}


class MemoryBackend:
    """DynamoDB, SQS, Scheduler, EventBridge and S3 in memory, on `clock`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.store = MemoryStore()
        self.sqs = MemorySqs(clock)
        self.scheduler = MemoryScheduler(self.sqs, clock)
        self.events = MemoryEventBridge(self.sqs, clock)
        self.payloads = MemoryPayloads()

    def table(self, payloads: Payloads) -> MemoryStore:
        """The table, reading and writing every payload through `payloads`: the runtime's
        pipeline (the app's codec, this backend's bucket), as the DynamoDB adapter is built
        with it. `_runtime.build(store=backend.table)` calls this with the one it makes."""
        self.store = MemoryStore(payloads, shares=self.store)
        return self.store

    def client(self, service: str, **_: Any) -> Any:
        """The boto3-shaped client of `service` (dynamodb, sqs, scheduler, events, s3)."""
        if service == "dynamodb":
            return _Tables()
        if service == "sqs":
            return self.sqs.client()
        if service == "scheduler":
            return self.scheduler.client()
        if service == "events":
            return self.events.client()
        if service == "s3":
            return _Buckets()
        raise ValueError(f"the memory backend has no {service} service")

    def session(self) -> MemoryBackend:
        """What `template.create` and `create_rules` take for a boto3 session."""
        return self

    def next_due(self, now: float) -> float | None:
        """The next time a message becomes receivable or a schedule fires."""
        times = [t for t in (self.sqs.next_due(now), self.scheduler.next_due())
                 if t is not None]
        return min(times) if times else None
