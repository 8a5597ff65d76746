"""Sticky execution: a warm decider keeps the live workflow instance of recently decided runs.

After a decision whose conditional append succeeded, the decider keeps its `Replayer` (the
instance: its loop, coroutines and state) keyed by run id, with the batch it last applied.
The next workflow task of that run whose history read ends exactly at that batch (the same
run, the same batch number and event ids: nothing in between that the instance did not
produce itself) feeds the instance only the new inbound events, so a decision costs
O(new events) rather than a replay of the whole history.

An instance is taken out while it decides (`take`) and comes back only with a batch that
was appended (`keep`): a lost append (`AppendConflict`), a failed task, non-determinism or
any error that escapes leaves it out, and the next task replays in full. It is also dropped
when its run closes, when the code changed (the app or workflow definition is another
object), when history moved past it, and by the LRU bounds: a count of runs and a budget of
history bytes (a live instance holds every settled result, so its memory follows its history).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass

from .._core import history as h
from .._core.definitions import App, WorkflowDefinition
from .._core.replay import Replayer

#: Evictions and misses are counted under these reasons (`StickyCache.stats`).
HIT, COLD, MOVED, CODE = "hit", "miss: not cached", "miss: history moved on", "miss: code changed"
CONFLICT, FAILED, CLOSED, BOUND = "append conflict", "task failed", "run closed", "lru bound"


@dataclass
class LiveRun:
    """A live instance and the batch it last applied (its own, appended)."""

    replayer: Replayer
    app: App
    definition: WorkflowDefinition
    number: int
    first_event_id: int
    next_event_id: int
    time: float
    #: encoded bytes of the history the instance has applied (what the byte budget counts)
    size: int

    def advance(self, batch: h.Batch, size: int) -> None:
        """The instance applied `batch` (of `size` encoded bytes), which was appended."""
        self.replayer.instance.meter.settle(batch.events)  # as a replay of it would
        self.number, self.first_event_id = batch.number, batch.first_event_id
        self.next_event_id, self.time = batch.next_event_id, batch.time
        self.size += size

    def continues(self, last: h.Batch) -> bool:
        """True if `last`, the newest batch read, is the one this instance appended."""
        return (last.number == self.number and last.first_event_id == self.first_event_id
                and last.next_event_id == self.next_event_id and last.time == self.time)


class StickyCache:
    """Bounded LRU of run id -> `LiveRun` (see the module docstring)."""

    def __init__(self, max_runs: int = 128, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_runs = max_runs
        self.max_bytes = max_bytes
        self._runs: OrderedDict[str, LiveRun] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        #: hits, misses and evictions by reason
        self.stats: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, run_id: str) -> LiveRun | None:
        """The run's kept instance, left in place (to inspect it or answer a query: queries
        put back what they change through the context, see `WorkflowInstance.query`)."""
        with self._lock:
            return self._runs.get(run_id)

    def take(self, run_id: str, last: h.Batch, app: App, definition: WorkflowDefinition,
             ) -> LiveRun | None:
        """The run's live instance if it continues exactly from `last` with the same code;
        it leaves the cache (it comes back with `keep`). Else None, and it is dropped."""
        with self._lock:
            live = self._runs.pop(run_id, None)
            if live is not None:
                self._bytes -= live.size
        if live is None:
            reason = COLD
        elif live.app is not app or live.definition is not definition:
            reason = CODE
        elif not live.continues(last):
            reason = MOVED
        else:
            self.stats[HIT] += 1
            return live
        self.stats[reason] += 1
        return None

    def keep(self, run_id: str, live: LiveRun) -> None:
        """Keep `live`, whose batch was just appended, evicting the least recent over bounds."""
        with self._lock:
            old = self._runs.pop(run_id, None)
            if old is not None:
                self._bytes -= old.size
            if live.size > self.max_bytes or self.max_runs <= 0:
                self.stats[BOUND] += 1
                return
            self._runs[run_id] = live
            self._bytes += live.size
            while len(self._runs) > self.max_runs or self._bytes > self.max_bytes:
                _, dropped = self._runs.popitem(last=False)
                self._bytes -= dropped.size
                self.stats[BOUND] += 1

    def evict(self, run_id: str, reason: str, in_hand: bool = True) -> None:
        """Drop the run's instance and count why: if one is cached, or if the caller held
        the instance that decided (`in_hand`: it is discarded, not kept)."""
        with self._lock:
            live = self._runs.pop(run_id, None)
            if live is not None:
                self._bytes -= live.size
        if live is not None or in_hand:
            self.stats[reason] += 1

    def clear(self) -> None:
        with self._lock:
            self._runs.clear()
            self._bytes = 0
