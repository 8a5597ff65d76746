"""The history cache of a warm decider: batches of recently decided runs, and their index.

Lambda reuses containers, so a decider often sees the same run again. Batches never change
once written, so a cached prefix is always true; it may only be short. The decider reads just
the batches after it, and if another decider appended in between, its own conditional append
loses and it reads again. Reads per decision drop from the whole history to what is new.

The cache is bounded by runs and by events: a decoded event takes about 2 KB, so 256 runs of
50,000 events would be 25 GB in a 1 GB Lambda. Past `max_events` the least recently used
runs go (the newest always stays: its decision holds it in memory anyway).

With the batches the cache keeps the run's `HistoryIndex` (and which batch consumed each
message key) as of its last batch, so a warm decision folds in only its own events instead
of re-indexing the whole history. The index is lent out (`take_index`) and given back only
with a batch that was appended and decided (`keep`): a decision that lost its append or
failed may have half-folded it, and it is rebuilt from the batches next time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from .._core import history as h
from .._core.index import HistoryIndex
from .ports import Store

#: Events kept over all cached runs: about 200 MB of the decider's 1,024 MB.
MAX_CACHED_EVENTS = 100_000


@dataclass
class Indexed:
    """A run's index and consumed-key map, both as of batch `number`."""

    number: int
    index: HistoryIndex
    consumed: dict[str, h.Batch]


class HistoryCache:
    """A bounded LRU of run id -> the batches read or written so far (and their index)."""

    def __init__(self, max_runs: int = 256, max_events: int = MAX_CACHED_EVENTS) -> None:
        self._runs: OrderedDict[str, tuple[list[h.Batch], int]] = OrderedDict()
        self._indexes: dict[str, Indexed] = {}
        #: runs kept (the least recently used go first)
        self.max_runs = max_runs
        self._max_events = max_events
        self._events = 0
        self._lock = threading.Lock()

    def load(self, store: Store, run_id: str, consistent: bool = True) -> list[h.Batch]:
        """The run's batches: the cached prefix, then what the store has after it (read
        eventually consistent unless `consistent`: it may miss the newest, never lie)."""
        with self._lock:
            cached = self._runs.get(run_id, ([], 0))[0]
        after = cached[-1].number if cached else 0
        new = store.load_batches(run_id, after=after, consistent=consistent)
        batches = cached + new if new else list(cached)
        self.keep(run_id, batches)
        return batches

    def take_index(self, run_id: str, batches: list[h.Batch]
                   ) -> tuple[HistoryIndex, dict[str, h.Batch]]:
        """The index of `batches` and the batch that consumed each message key, to fold the
        next decision into: the cached one if it is exactly as of the last batch (it leaves
        the cache), else built from every batch."""
        with self._lock:
            kept = self._indexes.pop(run_id, None)
        number = batches[-1].number if batches else 0
        if kept is not None and kept.number == number:
            return kept.index, kept.consumed
        return (HistoryIndex.of(batches),
                {key: batch for batch in batches for key in batch.consumed})

    def keep(self, run_id: str, batches: list[h.Batch], index: HistoryIndex | None = None,
             consumed: dict[str, h.Batch] | None = None) -> None:
        """Remember `batches` (and, if given, their index and consumed keys as of the last)."""
        with self._lock:
            before, counted = self._runs.pop(run_id, ([], 0))
            self._events -= counted
            if before and len(batches) >= len(before) and batches[len(before) - 1] is before[-1]:
                # the same list grown (batches never change): count only what was appended
                events = counted + sum(len(b.events) for b in batches[len(before):])
            else:
                events = sum(len(batch.events) for batch in batches)
            self._runs[run_id] = (batches, events)
            self._events += events
            if index is not None and consumed is not None and batches:
                self._indexes[run_id] = Indexed(batches[-1].number, index, consumed)
            while self._runs and (len(self._runs) > self.max_runs or (
                    len(self._runs) > 1 and self._events > self._max_events)):
                dropped, (_, count) = self._runs.popitem(last=False)
                self._events -= count
                self._indexes.pop(dropped, None)
            if self.max_runs <= 0:
                self._indexes.clear()

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._events -= self._runs.pop(run_id, ([], 0))[1]
            self._indexes.pop(run_id, None)

    @property
    def cached_events(self) -> int:
        """Events held over all cached runs."""
        with self._lock:
            return self._events
