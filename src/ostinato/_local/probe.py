"""`DroppedConnections`: a probe that drops a share of every botocore call in the process.

A botocore event hook rather than a wrapper around the API call, so it sees what every client
sends (the engine's, the client's, and the emulated services' own: pollers' receives and
deletes, Scheduler's ListSchedules and deliveries). A dropped call fails either before it
reaches the service (`before-send`: nothing happened; botocore's own retry may send it again,
as it would on AWS) or after it took effect (`after-call`: the caller never hears of it).
Only calls made under `faults.looking()` (the test looking from outside) are spared.

Enter it before the environment is built (hooks reach only clients created afterwards) and
`arm()` it once the stack exists. botocore's retry back-off, a wall-clock sleep, is skipped
while it is active: the environment's clock is virtual.
"""

from __future__ import annotations

import random
import threading
import types
from collections import Counter
from typing import Any

import botocore.endpoint
import botocore.handlers
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

from .faults import is_looking
from .motoserver import EnvironmentConflictError


class DroppedConnections:
    """Drop `rate` of all botocore calls, half before and half after they take effect, by a
    seeded random generator (see the module docstring)."""

    _active: DroppedConnections | None = None
    _active_lock = threading.Lock()

    def __init__(self, seed: int, rate: float = 0.04) -> None:
        self.rate = rate
        self.armed = False
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.calls = 0
        #: (service, operation, "before" | "after") of every dropped call
        self.dropped: list[tuple[str, str, str]] = []
        self._saved_time: Any = None

    def arm(self) -> None:
        self.armed = True

    def by_operation(self) -> Counter[str]:
        return Counter(f"{service}.{op}" for service, op, _ in self.dropped)

    def _roll(self, event_name: str, when: str) -> bool:
        if not self.armed or is_looking():
            return False
        _, service, operation = [*event_name.split("."), "", ""][:3]
        with self._lock:
            if when == "before":
                self.calls += 1
            if self._rng.random() >= self.rate / 2:
                return False
            self.dropped.append((service, operation, when))
        return True

    def _before(self, request: Any = None, event_name: str = "", **_: Any) -> None:
        if self._roll(event_name, "before"):
            raise EndpointConnectionError(endpoint_url=getattr(request, "url", "dropped"))

    def _after(self, event_name: str = "", **_: Any) -> None:
        if self._roll(event_name, "after"):
            raise ConnectionClosedError(endpoint_url=f"dropped after {event_name}")

    def __enter__(self) -> DroppedConnections:
        with DroppedConnections._active_lock:
            if DroppedConnections._active is not None:
                raise EnvironmentConflictError("another DroppedConnections probe is active")
            DroppedConnections._active = self
        botocore.handlers.BUILTIN_HANDLERS.insert(0, ("before-send", self._before))
        botocore.handlers.BUILTIN_HANDLERS.append(("after-call", self._after))
        self._saved_time = botocore.endpoint.time
        botocore.endpoint.time = types.SimpleNamespace(  # type: ignore[assignment]
            sleep=lambda seconds: None)
        return self

    def __exit__(self, *exc: object) -> None:
        self.armed = False
        handlers = botocore.handlers.BUILTIN_HANDLERS
        for entry in (("before-send", self._before), ("after-call", self._after)):
            if entry in handlers:
                handlers.remove(entry)
        botocore.endpoint.time = self._saved_time
        with DroppedConnections._active_lock:
            DroppedConnections._active = None
