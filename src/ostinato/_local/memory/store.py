"""The `Store` port in memory, with the semantics of the DynamoDB adapter (`_aws/store.py`).

Items are kept as DynamoDB keeps them: a head's payloads (arguments, result, failure, custom
status, parent) as their JSON, a batch as its stored body, so what a reader gets is never the
object a writer still holds, and encoding costs what it costs against DynamoDB. Every write is
conditional exactly where the adapter's is, and fails with the same typed conflict
(`AppendConflict`, `StartConflict`, `ScheduleConflict`) or the same quiet outcome (`project`
answering False, a stale heartbeat or a second update outcome ignored). One lock makes each
call atomic, as one DynamoDB request (or transaction) is. Reads are strongly consistent; the
list indexes are updated with the head (no index lag), sharded and paged as the adapter pages
them, with the same page tokens (`_core/listing.py`), so a token of one is refused by neither.

The contract suite (`tests/contract/`) holds this store and the adapter to the same answers.
"""

from __future__ import annotations

import bisect
import heapq
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..._core import history as h
from ..._core.listing import HEAD_INLINE_BYTES, LIST_SHARDS, list_keys, page_starts, shard_of
from ..._core.serde import dumps, loads
from ..._engine.ports import AppendConflict, Head, ScheduleConflict, ScheduleRecord, StartConflict

#: Longest task failure message kept on a head (the adapter's cut).
TASK_FAILURE_CHARS = 2000


@dataclass
class _HeadItem:
    """A head as the table holds it (payloads as JSON)."""

    workflow_id: str
    run_id: str
    workflow_type: str
    status: str
    start_time: float
    args: str
    batch: int = 0
    close_time: float | None = None
    result: str | None = None
    result_spilled: bool = False
    failure: str | None = None
    custom_status: str | None = None
    task_failure: str | None = None
    continued_from: str | None = None
    deadline: float | None = None
    parent: str | None = None

    def to_head(self, listed: bool = False) -> Head:
        """The `Head` read back; `listed`: as an index returns it (without arguments)."""
        def load(value: str | None) -> Any:
            return None if value is None else loads(value)

        return Head(workflow_id=self.workflow_id, run_id=self.run_id,
                    workflow_type=self.workflow_type, status=self.status,
                    start_time=self.start_time, args=[] if listed else loads(self.args),
                    close_time=self.close_time, result=load(self.result),
                    failure=load(self.failure), custom_status=load(self.custom_status),
                    batch=self.batch, task_failure=self.task_failure,
                    continued_from=self.continued_from, deadline=self.deadline,
                    parent=load(self.parent), result_spilled=self.result_spilled)


@dataclass(frozen=True)
class _BatchItem:
    number: int
    first: int
    time: float
    decided: bool
    consumed: tuple[str, ...]
    body: str

    def to_batch(self) -> h.Batch:
        return h.decode_body(self.number, self.first, self.time, self.decided,
                             list(self.consumed), self.body)


class _Run:
    """One run's items: batches by number (kept sorted), claims, outcomes, heartbeats."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.batches: dict[int, _BatchItem] = {}
        self.claims: dict[int, str] = {}
        self.updates: dict[str, str] = {}
        self.heartbeats: dict[int, tuple[int, str]] = {}
        self.cancel_requested: set[int] = set()  # activities whose cancel flag is raised


def _index_key(item: _HeadItem, key_attr: str) -> dict[str, Any]:
    """The DynamoDB key of `item` in an index, as a page token carries it."""
    value = list_keys(item.workflow_id, item.status, item.workflow_type)[key_attr]
    return {"pk": {"S": f"W#{item.workflow_id}"}, "sk": {"S": "HEAD"}, key_attr: {"S": value},
            "start_time": {"N": _number(item.start_time)}}


def _number(value: float) -> str:
    """A number as DynamoDB (and pynamodb) writes it."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class MemoryStore:
    """The `Store` port in memory (see the module docstring). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        #: When set, an eventually consistent read of a run's batches misses its newest one
        #: whenever this says so (as DynamoDB may, for a moment after the write); the
        #: simulation draws it from its seed. Strongly consistent reads never miss.
        self.stale_read: Callable[[], bool] | None = None
        #: the largest batch `append` takes: a transaction's worth, as the DynamoDB adapter
        #: without a payload bucket (this table keeps payloads inline)
        self.max_batch_bytes = h.MAX_BATCH_BYTES
        self._heads: dict[str, _HeadItem] = {}
        self._runs: dict[str, _Run] = {}
        self._schedules: dict[str, ScheduleRecord] = {}

    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run()
        return run

    # -- heads --------------------------------------------------------------------------
    def get_head(self, workflow_id: str) -> Head | None:
        with self._lock:
            item = self._heads.get(workflow_id)
            return None if item is None else item.to_head()

    def create_head(self, head: Head, replacing: str | None = None,
                    only_new: bool = False) -> None:
        """Make `head` the current run unless the id has a RUNNING run (`StartConflict`);
        with `replacing`, take the id over from that run; with `only_new`, only a never-used
        id (the adapter's conditions, clause for clause)."""
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
                raise StartConflict(None if current is None else current.to_head())
            self._heads[head.workflow_id] = _HeadItem(
                workflow_id=head.workflow_id, run_id=head.run_id,
                workflow_type=head.workflow_type, status=h.RUNNING,
                start_time=float(head.start_time), args=dumps(head.args),
                continued_from=head.continued_from,
                deadline=None if head.deadline is None else float(head.deadline),
                parent=None if head.parent is None else dumps(head.parent))

    def project(self, workflow_id: str, run_id: str, batch: int, state: dict[str, Any],
                task_failure: str | None = None) -> bool:
        """Copy a batch's projection onto the head, unless a newer one is there already."""
        with self._lock:
            item = self._heads.get(workflow_id)
            if item is None or item.run_id != run_id or not item.batch < batch:
                return False
            item.status, item.batch = state["status"], batch
            item.custom_status = dumps(state.get("custom_status"))
            item.task_failure = None if task_failure is None else task_failure[
                :TASK_FAILURE_CHARS]
            if state["status"] != h.RUNNING:
                result = dumps(state.get("result"))
                spilled = len(result.encode()) > HEAD_INLINE_BYTES
                close = state.get("close_time")
                item.close_time = None if close is None else float(close)
                item.result = None if spilled else result
                item.result_spilled = spilled
                item.failure = dumps(state.get("failure"))
            return True

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
            partitions: dict[int, list[_HeadItem]] = {shard: [] for shard in shards}
            for item in self._heads.values():
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
        page: list[_HeadItem] = []
        last: dict[int, _HeadItem] = {}
        for _, _, shard, item in heapq.merge(*snapshot.values(),
                                             key=lambda row: (row[0], row[1])):
            if len(page) == limit:
                break
            page.append(item)
            last[shard] = item
        else:  # every shard ran dry: no next page
            return [item.to_head(listed=True) for item in page], None
        following = {str(shard): (_index_key(last[shard], key_attr) if shard in last
                                  else start) for shard, start in shards.items()}
        return [item.to_head(listed=True) for item in page], {"shards": following}

    # -- history ------------------------------------------------------------------------
    def load_batches(self, run_id: str, after: int = 0, consistent: bool = True,
                     ) -> list[h.Batch]:
        """The run's batches numbered above `after`, in order (an eventually consistent read
        may miss the newest, see `stale_read`)."""
        return self.history_page(run_id, after, consistent=consistent)[0]

    def _items_after(self, run_id: str, after: int, consistent: bool = True,
                     ) -> list[_BatchItem]:
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
            batch = item.to_batch()
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
        return item.to_batch()

    def append(self, run_id: str, batch: h.Batch) -> None:
        """Put `batch` at its number; `AppendConflict` if that number is taken."""
        h.check_batch_size(batch, self.max_batch_bytes)
        item = _BatchItem(batch.number, batch.first_event_id, float(batch.time),
                          bool(batch.decided), tuple(batch.consumed), h.encode_body(batch))
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
    def claim_callback(self, run_id: str, seq: int, outcome: dict[str, Any]) -> dict[str, Any]:
        """Record the outcome of callback `seq` unless one is there; return the one that is."""
        with self._lock:
            stored = self._run(run_id).claims.setdefault(seq, dumps(outcome))
        return loads(stored)  # type: ignore[no-any-return]

    def callback_claim(self, run_id: str, seq: int) -> dict[str, Any] | None:
        with self._lock:
            run = self._runs.get(run_id)
            stored = None if run is None else run.claims.get(seq)
        return None if stored is None else loads(stored)  # type: ignore[no-any-return]

    def put_update_outcome(self, run_id: str, update_id: str, outcome: dict[str, Any]) -> None:
        """Record how update `update_id` ended; the first record stands."""
        with self._lock:
            self._run(run_id).updates.setdefault(update_id, dumps(outcome))

    def update_outcome(self, run_id: str, update_id: str) -> dict[str, Any] | None:
        with self._lock:
            run = self._runs.get(run_id)
            stored = None if run is None else run.updates.get(update_id)
        return None if stored is None else loads(stored)  # type: ignore[no-any-return]

    # -- heartbeats ---------------------------------------------------------------------
    def save_heartbeat(self, run_id: str, seq: int, attempt: int, details: Any) -> bool:
        """Record details unless a later attempt already did (a stale attempt loses quietly);
        True when cancellation was requested (read in the same call, as the UpdateItem does)."""
        with self._lock:
            run = self._run(run_id)
            stored = run.heartbeats.get(seq)
            if stored is not None and stored[0] > attempt:
                return False
            run.heartbeats[seq] = (attempt, dumps(details))
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
        return (None if stored is None else loads(stored[1])), cancelled

    def request_activity_cancel(self, run_id: str, seq: int) -> None:
        """Raise the cancel flag once (a repeated request changes nothing)."""
        with self._lock:
            self._run(run_id).cancel_requested.add(seq)

    # -- schedule items -------------------------------------------------------------------
    def create_schedule(self, record: ScheduleRecord) -> None:
        """Write a new schedule item; `ScheduleConflict` if the name is taken."""
        with self._lock:
            if record.name in self._schedules:
                raise ScheduleConflict(record.name)
            self._schedules[record.name] = ScheduleRecord(
                name=record.name, workflow_type=record.workflow_type,
                args=loads(dumps(record.args)), expression=record.expression,
                timezone=record.timezone, overlap=record.overlap,
                created=float(record.created),
                anchor=None if record.anchor is None else float(record.anchor))

    def _copy(self, record: ScheduleRecord) -> ScheduleRecord:
        return ScheduleRecord(
            name=record.name, workflow_type=record.workflow_type,
            args=loads(dumps(record.args)), expression=record.expression,
            timezone=record.timezone, overlap=record.overlap, created=record.created,
            anchor=record.anchor, last_fire=record.last_fire, last_wid=record.last_wid,
            fired=record.fired, skipped=record.skipped)

    def get_schedule(self, name: str) -> ScheduleRecord | None:
        with self._lock:
            record = self._schedules.get(name)
            return None if record is None else self._copy(record)

    def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule item, by name (the order of their sort keys)."""
        with self._lock:
            return [self._copy(self._schedules[name]) for name in sorted(
                self._schedules, key=lambda n: n.encode())]

    def delete_schedule(self, name: str) -> bool:
        """Delete the item; False if there was none."""
        with self._lock:
            return self._schedules.pop(name, None) is not None

    def claim_firing(self, name: str, fire_time: float, expected: float | None, wid: str,
                     skipped: bool) -> None:
        """Move the last firing from `expected` to `fire_time`, unless another delivery moved
        it first (`ScheduleConflict`)."""
        with self._lock:
            record = self._schedules.get(name)
            if record is None or record.last_fire != expected:
                raise ScheduleConflict(name)
            record.last_fire, record.last_wid = float(fire_time), wid
            if skipped:
                record.skipped += 1
            else:
                record.fired += 1
