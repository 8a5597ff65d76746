"""The engine: the decider, inbound translation, outbox, activities, caches, and the ports.

Imports only `_core` and its own ports; the adapters behind the ports are chosen by `_runtime`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .deferral import ORPHAN_GRACE, RetryLater, deferral_delay
from .ports import NO_OBSERVER, Observer, Store, Transport

if TYPE_CHECKING:
    from .._core import history as h
    from .._core import wire
    from .._core.definitions import App
    from .activities import ActivityWorker
    from .cache import HistoryCache
    from .decider import Decider
    from .dispatch import Dispatcher

__all__ = ["ORPHAN_GRACE", "Engine", "RetryLater", "deferral_delay"]

W = TypeVar("W")


class Engine:
    """The three kinds of work: workflow tasks, activity tasks and due deliveries.

    Each kind's worker is made (and its modules imported) on first use, once, whichever
    thread asks first (`ostinato dev` polls its queues on threads): an activity function
    never loads the decider and the replay core, a timer function neither.
    """

    def __init__(self, app: App, store: Store, transport: Transport,
                 clock: Callable[[], float] = time.time,
                 observer: Observer = NO_OBSERVER) -> None:
        self.app = app
        self.store = store
        self.transport = transport
        self.clock = clock
        self._observer = observer
        self._on_events: Callable[[str, str, list[h.Event]], None] | None = None
        self._workers: dict[str, Any] = {}
        self._lock = threading.RLock()  # re-entrant: the decider is made with the dispatcher

    def _worker(self, name: str, make: Callable[[], W]) -> W:
        worker = self._workers.get(name)
        if worker is None:
            with self._lock:
                worker = self._workers.get(name)
                if worker is None:
                    worker = self._workers[name] = make()
        return worker  # type: ignore[no-any-return]

    def _made(self, name: str) -> bool:
        """Whether the worker `name` was made already."""
        return name in self._workers

    @property
    def dispatcher(self) -> Dispatcher:
        def make() -> Dispatcher:
            from .dispatch import Dispatcher

            return Dispatcher(self.store, self.transport, self.clock)

        return self._worker("dispatcher", make)

    @property
    def decider(self) -> Decider:
        def make() -> Decider:
            from .activities import LocalActivities
            from .decider import Decider

            decider = Decider(self.app, self.store, self.transport, self.dispatcher,
                              LocalActivities(self.app, self.clock), self.clock)
            decider.observer, decider.on_events = self._observer, self._on_events
            return decider

        return self._worker("decider", make)

    @property
    def activities(self) -> ActivityWorker:
        def make() -> ActivityWorker:
            from .activities import ActivityWorker

            worker = ActivityWorker(self.app, self.store, self.transport, self.clock)
            worker.observer = self._observer
            return worker

        return self._worker("activities", make)

    @property
    def observer(self) -> Observer:
        """Where the decider and the activity worker report metrics and spans."""
        return self._observer

    @observer.setter
    def observer(self, observer: Observer) -> None:
        with self._lock:
            self._observer = observer
            if self._made("decider"):
                self.decider.observer = observer
            if self._made("activities"):
                self.activities.observer = observer

    @property
    def history(self) -> HistoryCache:
        return self.decider.history

    @property
    def on_events(self) -> Callable[[str, str, list[h.Event]], None] | None:
        return self._on_events

    @on_events.setter
    def on_events(self, hook: Callable[[str, str, list[h.Event]], None] | None) -> None:
        with self._lock:
            self._on_events = hook
            if self._made("decider"):
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
