"""The engine: the decider, inbound translation, outbox, activities, caches, and the ports.

Imports only `_core` and its own ports; the adapters behind the ports are chosen by `_runtime`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .._core import history as h
from .._core import wire
from .._core.definitions import App
from .activities import ActivityWorker, LocalActivities
from .cache import HistoryCache
from .decider import Decider
from .deferral import ORPHAN_GRACE, RetryLater, deferral_delay
from .dispatch import Dispatcher
from .ports import NO_OBSERVER, Observer, Store, Transport

__all__ = ["ORPHAN_GRACE", "Engine", "RetryLater", "deferral_delay"]


class Engine:
    """The three kinds of work: workflow tasks, activity tasks and due deliveries."""

    def __init__(self, app: App, store: Store, transport: Transport,
                 clock: Callable[[], float] = time.time,
                 observer: Observer = NO_OBSERVER) -> None:
        self.app = app
        self.store = store
        self.transport = transport
        self.clock = clock
        self.dispatcher = Dispatcher(store, transport, clock)
        self.decider = Decider(app, store, transport, self.dispatcher,
                               LocalActivities(app, clock), clock)
        self.activities = ActivityWorker(app, store, transport, clock)
        self.observer = observer

    @property
    def observer(self) -> Observer:
        """Where the decider and the activity worker report metrics and spans."""
        return self.decider.observer

    @observer.setter
    def observer(self, observer: Observer) -> None:
        self.decider.observer = self.activities.observer = observer

    @property
    def history(self) -> HistoryCache:
        return self.decider.history

    @property
    def on_events(self) -> Callable[[str, str, list[h.Event]], None] | None:
        return self.decider.on_events

    @on_events.setter
    def on_events(self, hook: Callable[[str, str, list[h.Event]], None] | None) -> None:
        self.decider.on_events = hook

    def handle_workflow_messages(self, deliveries: list[wire.Delivery]) -> None:
        """Decide once per run for these messages (all of one workflow id, in queue order)."""
        self.decider.handle(deliveries)

    def handle_activity_task(self, task: wire.ActivityTask, receive_count: int = 1,
                             time_left: float | None = None) -> None:
        """Run one activity attempt; report the outcome or schedule the next attempt."""
        self.activities.handle(task, receive_count, time_left)

    def handle_due(self, due: wire.Due) -> None:
        """A delayed delivery arrived: forward it, or wait longer if it is early."""
        if due.due - self.clock() > 1.0:
            self.transport.deliver_at(due.due, due.envelope, due.key)
            return
        self.transport.forward(due.envelope)
