"""The `Store` port in memory, with the semantics of the DynamoDB adapter (`_aws/store.py`).

Items hold what the adapter's items hold (`items.py`): every payload attribute (a head's
arguments, result, failure and custom status, a batch body, callback and update outcomes,
heartbeat details, a schedule's arguments) passes the same `Payloads` pipeline, the runtime's
(`MemoryBackend.table`): its codecs are applied, and what is over the threshold goes to the
payload bucket (`MemoryPayloads`) as a reference; a batch body is compressed and split into
item-sized parts as the adapter's, unless it is plain and small enough to stay inline whatever
it compresses to (`Payloads.keeps_inline`; the adapter's `body` form), which saves zlib on the
common path. No item is written over DynamoDB's 400 KB (names and values, `_core/items.py`):
such a write raises `PayloadTooLargeError` and changes nothing, as the adapter's does.

Every write is conditional exactly where the adapter's is, and fails with the same typed
conflict (`AppendConflict`, `StartConflict`, `ScheduleConflict`) or the same quiet outcome
(`project` answering False, a stale heartbeat or a second update outcome ignored). One lock
makes each call atomic, as one DynamoDB request (or transaction) is. Reads are strongly
consistent; the list indexes follow the heads (at once, unless `index_lag` says an update is
late, as a DynamoDB GSI's may be for a moment), sharded and paged as the adapter pages them,
with the same page tokens (`_core/listing.py`), so a token of one is
refused by neither. `raw_items` shows the table as a scan of the adapter's would.

The contract suite (`tests/contract/`) holds this store and the adapter to the same answers.
"""

from __future__ import annotations

import bisect
import copy
import heapq
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..._core import history as h
from ..._core.items import raw
from ..._core.listing import HEAD_INLINE_BYTES, LIST_SHARDS, list_keys, page_starts, shard_of
from ..._core.serde import dumps, loads
from ..._engine.payloads import PLAIN, Payloads
from ..._engine.ports import AppendConflict, Head, ScheduleConflict, ScheduleRecord, StartConflict
from .items import BatchItem, HeadItem, ScheduleItem, fits

#: Longest task failure message kept on a head (the adapter's cut).
TASK_FAILURE_CHARS = 2000


class _Run:
    """One run's items: batches by number (kept sorted), claims, outcomes, heartbeats
    (payloads sealed)."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.batches: dict[int, BatchItem] = {}
        self.claims: dict[int, str] = {}
        self.updates: dict[str, str] = {}
        self.heartbeats: dict[int, tuple[int, str]] = {}
        self.cancel_requested: set[int] = set()  # activities whose cancel flag is raised


def _index_key(item: HeadItem, key_attr: str) -> dict[str, Any]:
    """The DynamoDB key of `item` in an index, as a page token carries it."""
    value = list_keys(item.workflow_id, item.status, item.workflow_type)[key_attr]
    return {"pk": {"S": f"W#{item.workflow_id}"}, "sk": {"S": "HEAD"}, key_attr: {"S": value},
            "start_time": {"N": _number(item.start_time)}}


def _number(value: float) -> str:
    """A number as DynamoDB (and pynamodb) writes it."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class MemoryStore:
    """The `Store` port in memory (see the module docstring). Thread-safe.

    `payloads`: the pipeline every payload attribute passes (default plain JSON, nothing
    offloaded). `shares`: another store whose items this one reads and writes (one table,
    through another pipeline: a reader with another codec, or none).
    """

    def __init__(self, payloads: Payloads = PLAIN, *, shares: MemoryStore | None = None,
                 ) -> None:
        self.payloads = payloads
        #: When set, an eventually consistent read of a run's batches misses its newest one
        #: whenever this says so (as DynamoDB may, for a moment after the write); the
        #: simulation draws it from its seed. Strongly consistent reads never miss.
        self.stale_read: Callable[[], bool] | None = None
        #: When set, asked at each head write whether the list indexes take it late, and at
        #: each listing whether a late entry is still late: until it catches up the indexes
        #: list the head as it was (or not at all, for a new one), as a GSI lags its table.
        #: Describe (`get_head`) always reads the head itself.
        self.index_lag: Callable[[], bool] | None = None
        #: the largest batch `append` takes: one S3 object with a payload bucket, else a
        #: transaction's worth (the adapter's limit, `history.batch_limit`)
        self.max_batch_bytes = h.batch_limit(payloads.offloads)
        if shares is None:
            self._lock = threading.RLock()
            self._heads: dict[str, HeadItem] = {}
            self._runs: dict[str, _Run] = {}
            self._schedules: dict[str, ScheduleItem] = {}
            #: workflow id -> what the indexes still hold for a head whose update is late
            self._late: dict[str, HeadItem | None] = {}
        else:
            self._lock, self._heads = shares._lock, shares._heads
            self._runs, self._schedules = shares._runs, shares._schedules
            self._late = shares._late

    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run()
        return run

    def _seal(self, value: Any, what: str) -> str:
        return self.payloads.seal(dumps(value), what)

    def _open(self, stored: str | None) -> Any:
        return None if stored is None else loads(self.payloads.open(stored))

    # -- heads --------------------------------------------------------------------------
    def get_head(self, workflow_id: str) -> Head | None:
        with self._lock:
            item = self._heads.get(workflow_id)
        return None if item is None else item.to_head(self.payloads)

    def create_head(self, head: Head, replacing: str | None = None,
                    only_new: bool = False) -> None:
        """Make `head` the current run unless the id has a RUNNING run (`StartConflict`);
        with `replacing`, take the id over from that run; with `only_new`, only a never-used
        id (the adapter's conditions, clause for clause)."""
        new = HeadItem(
            workflow_id=head.workflow_id, run_id=head.run_id,
            workflow_type=head.workflow_type, status=h.RUNNING,
            start_time=float(head.start_time), args=self._seal(head.args, "workflow arguments"),
            continued_from=head.continued_from,
            deadline=None if head.deadline is None else float(head.deadline),
            parent=None if head.parent is None else dumps(head.parent))
        with self._lock:
            current = self._heads.get(head.workflow_id)
            if only_new:
                allowed = current is None
            elif replacing is None:
                allowed = current is None or (current.status != h.RUNNING
                                              and current.run_id != head.run_id)
            else:
                allowed = current is not None and current.run_id == replacing
            if not allowed:
                raise StartConflict(None if current is None else current.to_head(self.payloads))
            new.check()
            self._index_write(head.workflow_id, current)
            self._heads[head.workflow_id] = new

    def project(self, workflow_id: str, run_id: str, batch: int, state: dict[str, Any],
                task_failure: str | None = None) -> bool:
        """Copy a batch's projection onto the head, unless a newer one is there already."""
        custom_status = self._seal(state.get("custom_status"), "custom status")
        closed = state["status"] != h.RUNNING
        sealed = failure = None
        spilled = False
        if closed:
            result = dumps(state.get("result"))
            spilled = len(result.encode()) > HEAD_INLINE_BYTES  # read from the batch instead
            sealed = None if spilled else self.payloads.seal(result, "result")
            failure = self._seal(state.get("failure"), "failure")
        with self._lock:
            item = self._heads.get(workflow_id)
            if item is None or item.run_id != run_id or not item.batch < batch:
                return False
            new = item.copy()
            new.status, new.batch, new.custom_status = state["status"], batch, custom_status
            new.task_failure = None if task_failure is None else task_failure[
                :TASK_FAILURE_CHARS]
            if closed:
                close = state.get("close_time")
                new.close_time = None if close is None else float(close)
                new.result, new.result_spilled, new.failure = sealed, spilled, failure
            new.check()
            self._index_write(workflow_id, item)
            self._heads[workflow_id] = new
            return True

    def _index_write(self, workflow_id: str, before: HeadItem | None) -> None:
        """A head is about to change from `before` (the caller holds the lock): the indexes
        take it now, or keep what they held (`index_lag`)."""
        if self.index_lag is not None and self.index_lag():
            self._late.setdefault(workflow_id, before)
        else:
            self._late.pop(workflow_id, None)

    def _indexed(self) -> Iterator[HeadItem]:
        """The heads as the indexes hold them (the caller holds the lock): late entries catch
        up when `index_lag` no longer holds them back."""
        if self._late:
            for wid in [w for w in self._late if self.index_lag is None or not self.index_lag()]:
                del self._late[wid]
        for wid, item in self._heads.items():
            listed = self._late.get(wid, item)  # a late new head: None, not listed
            if listed is not None:
                yield listed

    def list_heads(self, status: str | None = None, workflow_type: str | None = None,
                   limit: int = 100, start_key: dict[str, Any] | None = None,
                   started_after: float | None = None, started_before: float | None = None,
                   ) -> tuple[list[Head], dict[str, Any] | None]:
        """Newest first, filtered by status, type and start time; paged per shard exactly as
        the adapter pages its sharded indexes (same tokens, same page boundaries)."""
        if status is not None:
            key_attr, prefix = "ls", f"{status}#"
        elif workflow_type is not None:
            key_attr, prefix = "lt", f"{workflow_type}#"
        else:
            key_attr, prefix = "la", ""
        low = started_after if started_after is not None else 0.0
        high = started_before if started_before is not None else 1e12
        shards = (dict.fromkeys(range(LIST_SHARDS)) if start_key is None
                  else page_starts(start_key, key_attr, prefix, low, high))
        with self._lock:
            partitions: dict[int, list[HeadItem]] = {shard: [] for shard in shards}
            for item in self._indexed():
                shard = shard_of(item.workflow_id)
                if shard not in partitions or not low <= item.start_time <= high:
                    continue
                if status is not None and item.status != status:
                    continue
                if workflow_type is not None and item.workflow_type != workflow_type:
                    continue
                partitions[shard].append(item)
            snapshot = {shard: [(-i.start_time, f"W#{i.workflow_id}", shard, i) for i in items]
                        for shard, items in partitions.items()}
        for shard, rows in snapshot.items():
            rows.sort(key=lambda row: (row[0], row[1]))
            start = shards[shard]
            if start is not None:  # resume after the shard's last head seen
                after = (-float(start["start_time"]["N"]), start["pk"]["S"])
                snapshot[shard] = rows[bisect.bisect_right(
                    [(row[0], row[1]) for row in rows], after):]
        page: list[HeadItem] = []
        last: dict[int, HeadItem] = {}
        for _, _, shard, item in heapq.merge(*snapshot.values(),
                                             key=lambda row: (row[0], row[1])):
            if len(page) == limit:
                break
            page.append(item)
            last[shard] = item
        else:  # every shard ran dry: no next page
            return [item.to_head(self.payloads, listed=True) for item in page], None
        following = {str(shard): (_index_key(last[shard], key_attr) if shard in last
                                  else start) for shard, start in shards.items()}
        return [item.to_head(self.payloads, listed=True) for item in page], {"shards": following}

    # -- history ------------------------------------------------------------------------
    def load_batches(self, run_id: str, after: int = 0, consistent: bool = True,
                     ) -> list[h.Batch]:
        """The run's batches numbered above `after`, in order (an eventually consistent read
        may miss the newest, see `stale_read`)."""
        return self.history_page(run_id, after, consistent=consistent)[0]

    def _items_after(self, run_id: str, after: int, consistent: bool = True,
                     ) -> list[BatchItem]:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return []
            start = bisect.bisect_right(run.numbers, after)
            items = [run.batches[n] for n in run.numbers[start:]]
        if items and not consistent and self.stale_read is not None and self.stale_read():
            items.pop()
        return items

    def history_page(self, run_id: str, after: int = 0, max_bytes: int | None = None,
                     consistent: bool = True) -> tuple[list[h.Batch], bool]:
        """The batches above `after` until they hold `max_bytes` of event JSON (at least
        one), and whether more follow."""
        batches: list[h.Batch] = []
        size = 0
        for item in self._items_after(run_id, after, consistent):
            if max_bytes is not None and batches and size >= max_bytes:
                return batches, True
            batch = item.to_batch(self.payloads)
            batches.append(batch)
            if max_bytes is not None:
                size += len(dumps(batch.events))
        return batches, False

    def last_batch(self, run_id: str) -> h.Batch | None:
        """The newest batch of a run (its projection is authoritative)."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or not run.numbers:
                return None
            item = run.batches[run.numbers[-1]]
        return item.to_batch(self.payloads)

    def append(self, run_id: str, batch: h.Batch) -> None:
        """Put `batch` at its number; `AppendConflict` if that number is taken."""
        body, size = h.sized_body(batch, self.max_batch_bytes)
        fields = (batch.number, batch.first_event_id, float(batch.time), bool(batch.decided),
                  tuple(batch.consumed))
        if self.payloads.keeps_inline(size):
            item = BatchItem(*fields, body=body)
        else:
            item = BatchItem(*fields, parts=tuple(self.payloads.seal_batch(body)))
        item.check(run_id)
        with self._lock:
            run = self._run(run_id)
            if batch.number in run.batches:
                raise AppendConflict(f"batch {batch.number} of run {run_id} exists")
            run.batches[batch.number] = item
            bisect.insort(run.numbers, batch.number)

    def iter_events(self, run_id: str) -> Iterator[h.Event]:
        for batch in self.load_batches(run_id):
            yield from batch.to_events()

    # -- callback and update outcomes ----------------------------------------------------
    def _outcome(self, run_id: str, sk: str, outcome: dict[str, Any], what: str) -> str:
        sealed = self._seal(outcome, what)
        fits(what, lambda: {"pk": f"R#{run_id}", "sk": sk, "outcome": sealed},
             len(sealed) + len(run_id) + len(sk))
        return sealed

    def claim_callback(self, run_id: str, seq: int, outcome: dict[str, Any]) -> dict[str, Any]:
        """Record the outcome of callback `seq` unless one is there; return the one that is."""
        sealed = self._outcome(run_id, f"C#{seq}", outcome, "callback outcome")
        with self._lock:
            claims = self._run(run_id).claims
            stored = claims.get(seq)
            if stored is None:
                claims[seq] = sealed
                return outcome
        return self._open(stored)  # type: ignore[no-any-return]

    def callback_claim(self, run_id: str, seq: int) -> dict[str, Any] | None:
        with self._lock:
            run = self._runs.get(run_id)
            stored = None if run is None else run.claims.get(seq)
        return self._open(stored)  # type: ignore[no-any-return]

    def put_update_outcome(self, run_id: str, update_id: str, outcome: dict[str, Any]) -> None:
        """Record how update `update_id` ended; the first record stands."""
        sealed = self._outcome(run_id, f"U#{update_id}", outcome, "update outcome")
        with self._lock:
            self._run(run_id).updates.setdefault(update_id, sealed)

    def update_outcome(self, run_id: str, update_id: str) -> dict[str, Any] | None:
        with self._lock:
            run = self._runs.get(run_id)
            stored = None if run is None else run.updates.get(update_id)
        return self._open(stored)  # type: ignore[no-any-return]

    # -- heartbeats ---------------------------------------------------------------------
    def save_heartbeat(self, run_id: str, seq: int, attempt: int, details: Any) -> bool:
        """Record details unless a later attempt already did (a stale attempt loses quietly);
        True when cancellation was requested (read in the same call, as the UpdateItem does)."""
        sealed = self._seal(details, "heartbeat details")
        fits("heartbeat details", lambda: {"pk": f"R#{run_id}", "sk": f"H#{seq}",
                                           "attempt": attempt, "details": sealed,
                                           "cancel_requested": True},
             len(sealed) + len(run_id))
        with self._lock:
            run = self._run(run_id)
            stored = run.heartbeats.get(seq)
            if stored is not None and stored[0] > attempt:
                return False
            run.heartbeats[seq] = (attempt, sealed)
            return seq in run.cancel_requested

    def load_heartbeat(self, run_id: str, seq: int) -> Any:
        return self.heartbeat_state(run_id, seq)[0]

    def heartbeat_state(self, run_id: str, seq: int) -> tuple[Any, bool]:
        """The last details (None if none) and the cancel flag, in one read."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return None, False
            stored = run.heartbeats.get(seq)
            cancelled = seq in run.cancel_requested
        return (None if stored is None else self._open(stored[1])), cancelled

    def request_activity_cancel(self, run_id: str, seq: int) -> None:
        """Raise the cancel flag once (a repeated request changes nothing)."""
        with self._lock:
            self._run(run_id).cancel_requested.add(seq)

    # -- schedule items -------------------------------------------------------------------
    def create_schedule(self, record: ScheduleRecord) -> None:
        """Write a new schedule item; `ScheduleConflict` if the name is taken."""
        item = ScheduleItem(ScheduleRecord(
            name=record.name, workflow_type=record.workflow_type, args=[],
            expression=record.expression, timezone=record.timezone, overlap=record.overlap,
            created=float(record.created),
            anchor=None if record.anchor is None else float(record.anchor)),
            self._seal(record.args, "schedule arguments"))
        item.check()
        with self._lock:
            if record.name in self._schedules:
                raise ScheduleConflict(record.name)
            self._schedules[record.name] = item

    def get_schedule(self, name: str) -> ScheduleRecord | None:
        with self._lock:
            item = self._schedules.get(name)
            read = None if item is None else ScheduleItem(copy.copy(item.record), item.args)
        return None if read is None else read.to_record(self.payloads)

    def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule item, by name (the order of their sort keys)."""
        with self._lock:
            items = [ScheduleItem(copy.copy(item.record), item.args) for _, item in sorted(
                self._schedules.items(), key=lambda pair: pair[0].encode())]
        return [item.to_record(self.payloads) for item in items]

    def delete_schedule(self, name: str) -> bool:
        """Delete the item; False if there was none."""
        with self._lock:
            return self._schedules.pop(name, None) is not None

    def claim_firing(self, name: str, fire_time: float, expected: float | None, wid: str,
                     skipped: bool) -> None:
        """Move the last firing from `expected` to `fire_time`, unless another delivery moved
        it first (`ScheduleConflict`)."""
        with self._lock:
            item = self._schedules.get(name)
            if item is None or item.record.last_fire != expected:
                raise ScheduleConflict(name)
            record = item.record
            record.last_fire, record.last_wid = float(fire_time), wid
            if skipped:
                record.skipped += 1
            else:
                record.fired += 1


def raw_items(store: MemoryStore) -> list[dict[str, dict[str, Any]]]:
    """Every item of the table in DynamoDB JSON, as a scan of the adapter's table returns
    them (for tests that read what is stored: sizes, ciphertext, envelopes)."""
    with store._lock:
        items = [head.attrs() for head in store._heads.values()]
        for run_id, run in store._runs.items():
            for number in run.numbers:
                items += run.batches[number].attrs(run_id)
            items += [{"pk": f"R#{run_id}", "sk": f"C#{seq}", "outcome": outcome}
                      for seq, outcome in run.claims.items()]
            items += [{"pk": f"R#{run_id}", "sk": f"U#{uid}", "outcome": outcome}
                      for uid, outcome in run.updates.items()]
            for seq in sorted(set(run.heartbeats) | run.cancel_requested):
                attempt, details = run.heartbeats.get(seq, (None, None))
                items.append({"pk": f"R#{run_id}", "sk": f"H#{seq}", "attempt": attempt,
                              "details": details,
                              "cancel_requested": True if seq in run.cancel_requested
                              else None})
        items += [item.attrs() for item in store._schedules.values()]
    return [raw(item) for item in items]
