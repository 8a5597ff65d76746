"""The history cache of a warm decider: batches of recently decided runs.

Lambda reuses containers, so a decider often sees the same run again. Batches never change
once written, so a cached prefix is always true; it may only be short. The decider reads just
the batches after it, and if another decider appended in between, its own conditional append
loses and it reads again. Reads per decision drop from the whole history to what is new.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .._core import history as h
from .ports import Store


class HistoryCache:
    """A bounded LRU of run id -> the batches read or written so far."""

    def __init__(self, max_runs: int = 256) -> None:
        self._runs: OrderedDict[str, list[h.Batch]] = OrderedDict()
        self._max = max_runs
        self._lock = threading.Lock()

    def load(self, store: Store, run_id: str, consistent: bool = True) -> list[h.Batch]:
        """The run's batches: the cached prefix, then what the store has after it (read
        eventually consistent unless `consistent`: it may miss the newest, never lie)."""
        with self._lock:
            cached = list(self._runs.get(run_id, ()))
        after = cached[-1].number if cached else 0
        batches = cached + store.load_batches(run_id, after=after, consistent=consistent)
        self.keep(run_id, batches)
        return batches

    def keep(self, run_id: str, batches: list[h.Batch]) -> None:
        with self._lock:
            self._runs[run_id] = batches
            self._runs.move_to_end(run_id)
            while len(self._runs) > self._max:
                self._runs.popitem(last=False)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)
