"""The history cache of a warm decider: batches of recently decided runs.

Lambda reuses containers, so a decider often sees the same run again. Batches never change
once written, so a cached prefix is always true; it may only be short. The decider reads just
the batches after it, and if another decider appended in between, its own conditional append
loses and it reads again. Reads per decision drop from the whole history to what is new.

The cache is bounded by runs and by events: a decoded event takes about 2 KB, so 256 runs of
50,000 events would be 25 GB in a 1 GB Lambda. Past `max_events` the least recently used
runs go (the newest always stays: its decision holds it in memory anyway).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .._core import history as h
from .ports import Store

#: Events kept over all cached runs: about 200 MB of the decider's 1,024 MB.
MAX_CACHED_EVENTS = 100_000


class HistoryCache:
    """A bounded LRU of run id -> the batches read or written so far."""

    def __init__(self, max_runs: int = 256, max_events: int = MAX_CACHED_EVENTS) -> None:
        self._runs: OrderedDict[str, tuple[list[h.Batch], int]] = OrderedDict()
        self._max = max_runs
        self._max_events = max_events
        self._events = 0
        self._lock = threading.Lock()

    def load(self, store: Store, run_id: str, consistent: bool = True) -> list[h.Batch]:
        """The run's batches: the cached prefix, then what the store has after it (read
        eventually consistent unless `consistent`: it may miss the newest, never lie)."""
        with self._lock:
            cached = list(self._runs.get(run_id, ((), 0))[0])
        after = cached[-1].number if cached else 0
        batches = cached + store.load_batches(run_id, after=after, consistent=consistent)
        self.keep(run_id, batches)
        return batches

    def keep(self, run_id: str, batches: list[h.Batch]) -> None:
        events = sum(len(batch.events) for batch in batches)
        with self._lock:
            self._events -= self._runs.pop(run_id, ((), 0))[1]
            self._runs[run_id] = (batches, events)
            self._events += events
            while self._runs and (len(self._runs) > self._max or (
                    len(self._runs) > 1 and self._events > self._max_events)):
                self._events -= self._runs.popitem(last=False)[1][1]

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._events -= self._runs.pop(run_id, ((), 0))[1]

    @property
    def cached_events(self) -> int:
        """Events held over all cached runs."""
        with self._lock:
            return self._events
