"""DynamoDB storage through pynamodb: run histories, workflow heads, heartbeats.

Layout (one table, keys `pk`/`sk`):

- `W#<workflow_id>` / `HEAD`: the current run of a workflow id and its projection (status,
  type, times, result, custom status) for describe and list. Three sharded indexes list heads
  newest first without a scan: `by_status` (key `ls` = status#shard), `by_type` (`lt` =
  type#shard) and `by_start` (`la` = shard), each sorted by start time. The shard (0-7, from
  the workflow id) spreads a status or type over 8 partitions, so no single status value takes
  every start. They project what describe shows except the arguments (INCLUDE), so an index
  write stays small; a result over 32 KiB is not copied to the head (`result_spilled`) and is
  read from the run's last batch instead. The head never nears 400 KB: arguments over 128 KiB
  go to the payload bucket (`Payloads`), result, failure and custom status are 32 KiB at most.
- `R#<run_id>` / `B#<n>`: batch n of the run's history (events, outbox, consumed message
  keys, projection). Batches are put with `attribute_not_exists`: the key is the expected
  sequence number, so of two racing appenders exactly one wins (`AppendConflict`).
- `R#<run_id>` / `H#<seq>`: last heartbeat details of activity `seq`, and its cancel flag
  (set by the decider's outbox once the cancel request is in history; each heartbeat write
  reads it back in the same request).

Every write is conditional; a failed condition becomes a typed error here and nowhere else.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Iterator
from typing import Any

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from .._core import history as h
from .._core.errors import PayloadTooLargeError
from .._core.items import ITEM_CHUNK, ITEM_LIMIT  # noqa: F401 - ITEM_CHUNK: read from here too
from .._core.listing import HEAD_INLINE_BYTES, LIST_SHARDS, shard_of
from .._core.listing import list_keys as _list_keys
from .._core.listing import page_starts as _page_starts
from .._core.serde import dumps, loads
from .._engine.payloads import PLAIN, Payloads
from .._engine.ports import AppendConflict, Head, ScheduleConflict, ScheduleRecord, StartConflict
from .heartbeats import HeartbeatItems

#: What the list indexes carry besides their keys: everything describe shows but arguments.
LISTED = ["run_id", "workflow_type", "status", "close_time", "result", "result_spilled",
          "failure", "custom_status", "task_failure"]


def _transaction_conflict(exc: Exception) -> bool:
    """Another transaction touched the same item at the same moment (nothing was written)."""
    code = getattr(exc, "cause_response_code", None)
    if code == "TransactionConflictException":
        return True
    reasons = getattr(exc, "cancellation_reasons", None) or []
    return code == "TransactionCanceledException" and any(
        r is not None and r.code == "TransactionConflict" for r in reasons)


def _refuse_if_too_large(exc: Exception, what: str) -> None:
    """DynamoDB refused an item over 400 KB: the typed error the memory table raises too."""
    message = getattr(exc, "cause_response_message", None) or ""
    if getattr(exc, "cause_response_code", None) == "ValidationException" and (
            "Item size" in message and "maximum allowed size" in message):
        raise PayloadTooLargeError(f"{what} (one DynamoDB item)", ITEM_LIMIT + 1,
                                   ITEM_LIMIT) from None


def _conditional_failed(exc: Exception) -> bool:
    code = getattr(exc, "cause_response_code", None)
    if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
        if code == "TransactionCanceledException":
            reasons = getattr(exc, "cancellation_reasons", None) or []
            return any(r is not None and r.code == "ConditionalCheckFailed" for r in reasons)
        return True
    return False


@functools.cache
def _models(table_name: str, region: str) -> tuple[Any, Any, Any, Any]:
    """Model classes bound to one table (pynamodb binds the table name per class)."""
    meta = type("Meta", (), {"table_name": table_name, "region": region})

    class ByStatus(GlobalSecondaryIndex):  # type: ignore[type-arg]
        class Meta:
            index_name = "by_status"
            projection = IncludeProjection(LISTED)

        ls = UnicodeAttribute(hash_key=True)
        start_time = NumberAttribute(range_key=True)

    class ByType(GlobalSecondaryIndex):  # type: ignore[type-arg]
        class Meta:
            index_name = "by_type"
            projection = IncludeProjection(LISTED)

        lt = UnicodeAttribute(hash_key=True)
        start_time = NumberAttribute(range_key=True)

    class ByStart(GlobalSecondaryIndex):  # type: ignore[type-arg]
        class Meta:
            index_name = "by_start"
            projection = IncludeProjection(LISTED)

        la = UnicodeAttribute(hash_key=True)
        start_time = NumberAttribute(range_key=True)

    class HeadItem(Model):
        Meta = meta  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        run_id = UnicodeAttribute()
        workflow_type = UnicodeAttribute()
        status = UnicodeAttribute()
        start_time = NumberAttribute()
        args = UnicodeAttribute()
        close_time = NumberAttribute(null=True)
        result = UnicodeAttribute(null=True)
        failure = UnicodeAttribute(null=True)
        custom_status = UnicodeAttribute(null=True)
        batch = NumberAttribute(default=0)
        task_failure = UnicodeAttribute(null=True)
        continued_from = UnicodeAttribute(null=True)
        deadline = NumberAttribute(null=True)
        parent = UnicodeAttribute(null=True)
        result_spilled = BooleanAttribute(null=True)
        ls = UnicodeAttribute(null=True)
        lt = UnicodeAttribute(null=True)
        la = UnicodeAttribute(null=True)
        by_status = ByStatus()
        by_type = ByType()
        by_start = ByStart()

    class BatchItem(Model):
        Meta = meta  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        first = NumberAttribute()
        t = NumberAttribute()
        decided = BooleanAttribute()
        # the batch body {"events", "outbox", "state"}: zlib-compressed JSON in `bz` (written
        # since compression), or plain JSON in `body` (older items); chunked over parts
        body = UnicodeAttribute(null=True)
        bz = BinaryAttribute(null=True, legacy_encoding=False)
        parts = NumberAttribute(default=1)
        consumed = ListAttribute(null=True)  # type: ignore[var-annotated]

    class HeartbeatItem(Model):
        Meta = meta  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        attempt = NumberAttribute(null=True)  # absent while only the cancel flag is set
        details = UnicodeAttribute(null=True)
        cancel_requested = BooleanAttribute(null=True)

    class OutcomeItem(Model):  # callback claims (C#<seq>) and update outcomes (U#<id>)
        Meta = meta  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        outcome = UnicodeAttribute()

    return HeadItem, BatchItem, HeartbeatItem, OutcomeItem


def _batch_sk(number: int) -> str:
    return f"B#{number:010d}"


def _to_batch(head: Any, parts: list[Any], payloads: Payloads = PLAIN) -> h.Batch:
    """The batch whose items are `parts` (its first item, then the rest, in key order)."""
    if head.bz is not None:  # zlib, or an envelope of it (codecs, or offloaded to S3)
        body = payloads.open_batch([bytes(p.bz) for p in parts])
    else:
        body = "".join(p.body for p in parts)
    return h.decode_body(int(head.sk[2:12]), int(head.first), float(head.t), bool(head.decided),
                         list(head.consumed or []), body)


@functools.cache
def _schedule_model(table_name: str, region: str) -> Any:
    """The schedule item, bound to the workflow table (attribute names stay out of its indexes)."""

    meta = type("Meta", (), {"table_name": table_name, "region": region})

    class ScheduleItem(Model):
        Meta = meta  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        wf_type = UnicodeAttribute()
        args = UnicodeAttribute()
        expression = UnicodeAttribute()
        tz = UnicodeAttribute()
        overlap = UnicodeAttribute()
        created = NumberAttribute()
        anchor = NumberAttribute(null=True)  # rate schedules count from here (StartDate)
        last_fire = NumberAttribute(null=True)
        last_wid = UnicodeAttribute(null=True)
        fired = NumberAttribute(default=0)
        skipped = NumberAttribute(default=0)

    return ScheduleItem


#: Schedule items: `SCHEDULES` / `S#<name>`.
SCHEDULES = "SCHEDULES"


def _to_schedule(item: Any, payloads: Payloads) -> ScheduleRecord:
    return ScheduleRecord(
        name=item.sk[2:], workflow_type=item.wf_type, args=loads(payloads.open(item.args)),
        expression=item.expression, timezone=item.tz, overlap=item.overlap,
        created=float(item.created), anchor=None if item.anchor is None else float(item.anchor),
        last_fire=None if item.last_fire is None else float(item.last_fire),
        last_wid=item.last_wid, fired=int(item.fired or 0), skipped=int(item.skipped or 0))


def _share_client(*models: Any) -> None:
    """One botocore client for every model class of the table, made from boto3's session.

    pynamodb gives each model class a connection of its own, and each connection makes its own
    botocore session and client on its first request, loading DynamoDB's service model anew:
    100-200 ms each here, five times over on a cold Lambda's first invocations. The first
    model's client (made by pynamodb, with its configuration) serves them all, and it is made
    from boto3's default botocore session, whose loader already holds the endpoint and
    partition data the SQS client loaded (about 150 ms more). botocore clients are safe to
    share between threads once made.
    """
    connections = [m._get_connection().connection for m in models]
    first = connections[0]
    if first._client is None:
        import boto3

        first._local.session = boto3._get_default_session()._session
    client = first.client
    for connection in connections[1:]:
        connection._client = client


class Store(HeartbeatItems):
    """The DynamoDB adapter (see the module docstring)."""

    def __init__(self, table_name: str, region: str = "us-east-1",
                 payloads: Payloads = PLAIN) -> None:
        self._head, self._batch, self._heartbeat, self._claim = _models(table_name, region)
        self._schedule = _schedule_model(table_name, region)
        _share_client(self._head, self._batch, self._heartbeat, self._claim, self._schedule)
        self.table_name = table_name
        self.payloads = payloads  # every payload attribute passes it (`_engine/payloads.py`)
        self.max_batch_bytes = h.batch_limit(payloads.offloads)

    def _put(self, value: Any, what: str) -> str:
        return self.payloads.seal(dumps(value), what)

    def _get(self, stored: str | None) -> Any:
        return None if stored is None else loads(self.payloads.open(stored))

    # -- heads --------------------------------------------------------------------------
    def get_head(self, workflow_id: str) -> Head | None:
        try:
            item = self._head.get(f"W#{workflow_id}", "HEAD", consistent_read=True)
        except self._head.DoesNotExist:
            return None
        return self._to_head(item)

    def _to_head(self, item: Any) -> Head:
        args = getattr(item, "args", None)  # not in the list indexes
        return Head(
            workflow_id=item.pk[2:], run_id=item.run_id, workflow_type=item.workflow_type,
            status=item.status, start_time=float(item.start_time),
            args=[] if args is None else self._get(args),  # a listed head: describe needs none
            close_time=None if item.close_time is None else float(item.close_time),
            result=self._get(item.result), failure=self._get(item.failure),
            custom_status=self._get(item.custom_status),
            batch=int(item.batch or 0), task_failure=item.task_failure,
            continued_from=item.continued_from,
            deadline=None if item.deadline is None else float(item.deadline),
            parent=None if getattr(item, "parent", None) is None else loads(item.parent),
            result_spilled=bool(item.result_spilled))

    def create_head(self, head: Head, replacing: str | None = None,
                    only_new: bool = False) -> None:
        """Make `head` the current run unless the id has a RUNNING run (`StartConflict`).

        With `replacing`, take the id over from that run instead (terminate_existing,
        continue-as-new). The same run is never written twice (a retry gets `StartConflict`
        naming it), so a repeated attempt cannot reset a run that already moved on.
        """
        H = self._head
        item = H(f"W#{head.workflow_id}", "HEAD", run_id=head.run_id,
                 workflow_type=head.workflow_type, status=h.RUNNING,
                 start_time=head.start_time, args=self._put(head.args, "workflow arguments"),
                 batch=0,
                 continued_from=head.continued_from, deadline=head.deadline,
                 parent=None if head.parent is None else dumps(head.parent),
                 **_list_keys(head.workflow_id, h.RUNNING, head.workflow_type))
        if only_new:  # the id must never have had a run (id_reuse_policy reject_duplicate)
            allowed = H.pk.does_not_exist()
        elif replacing is None:
            allowed = H.pk.does_not_exist() | ((H.status != h.RUNNING)
                                               & (H.run_id != head.run_id))
        else:  # never rewrite this same run: a repeated attempt must not reset its status
            allowed = H.run_id == replacing
        try:
            item.save(condition=allowed)
        except PutError as exc:
            if _conditional_failed(exc):
                raise StartConflict(self.get_head(head.workflow_id)) from None
            _refuse_if_too_large(exc, f"the head of workflow {head.workflow_id!r}")
            raise

    def project(self, workflow_id: str, run_id: str, batch: int, state: dict[str, Any],
                task_failure: str | None = None) -> bool:
        """Copy a batch's projection onto the head, unless a newer one is there already."""
        H = self._head
        item = H(f"W#{workflow_id}", "HEAD")
        shard = shard_of(workflow_id)
        actions = [H.status.set(state["status"]), H.batch.set(batch),
                   H.ls.set(f"{state['status']}#{shard}"),
                   H.custom_status.set(self._put(state.get("custom_status"), "custom status"))]
        if task_failure is None:
            actions.append(H.task_failure.remove())
        else:
            actions.append(H.task_failure.set(task_failure[:2000]))
        if state["status"] != h.RUNNING:
            result = dumps(state.get("result"))
            spilled = len(result.encode()) > HEAD_INLINE_BYTES  # read from the batch instead
            actions += [H.close_time.set(state.get("close_time")),
                        H.result.set(None if spilled else self.payloads.seal(result, "result")),
                        H.result_spilled.set(True) if spilled else H.result_spilled.remove(),
                        H.failure.set(self._put(state.get("failure"), "failure"))]
        newer_batch_of_this_run = (H.run_id == run_id) & (H.batch < batch)
        try:
            item.update(actions=actions, condition=newer_batch_of_this_run)
        except UpdateError as exc:
            if _conditional_failed(exc):
                return False
            _refuse_if_too_large(exc, f"the head of workflow {workflow_id!r}")
            raise
        return True

    def list_heads(self, status: str | None = None, workflow_type: str | None = None,
                   limit: int = 100, start_key: dict[str, Any] | None = None,
                   started_after: float | None = None, started_before: float | None = None,
                   ) -> tuple[list[Head], dict[str, Any] | None]:
        """Newest first, filtered by status, type and start time, through the sharded indexes.

        Each shard is queried newest first and the shards are merged; `start_key` (what the
        previous page returned) holds where each shard stopped. Never a scan.
        """
        H = self._head
        condition = None
        if status is not None and workflow_type is not None:
            index, prefix, condition = H.by_status, f"{status}#", H.workflow_type == workflow_type
        elif status is not None:
            index, prefix = H.by_status, f"{status}#"
        elif workflow_type is not None:
            index, prefix = H.by_type, f"{workflow_type}#"
        else:
            index, prefix = H.by_start, ""
        low = started_after if started_after is not None else 0.0
        high = started_before if started_before is not None else 1e12
        when = None
        if started_after is not None or started_before is not None:
            when = H.start_time.between(low, high)
        key_attr = {"": "la"}.get(prefix, "ls" if status is not None else "lt")
        shards = (dict.fromkeys(range(LIST_SHARDS)) if start_key is None
                  else _page_starts(start_key, key_attr, prefix, low, high))

        def stream(shard: int) -> Iterator[tuple[float, str, int, Any]]:
            for item in index.query(f"{prefix}{shard}", range_key_condition=when,
                                    filter_condition=condition, scan_index_forward=False,
                                    page_size=limit, last_evaluated_key=shards[shard]):
                yield -float(item.start_time), item.pk, shard, item

        page: list[Any] = []
        last: dict[int, Any] = {}
        merged = heapq.merge(*(stream(shard) for shard in shards))
        for _, _, shard, item in merged:
            if len(page) == limit:
                break
            page.append(item)
            last[shard] = item
        else:  # every shard ran dry: no next page
            return [self._to_head(item) for item in page], None
        following: dict[str, Any] = {}
        for shard, start in shards.items():
            if shard in last:
                item = last[shard]
                following[str(shard)] = {
                    "pk": {"S": item.pk}, "sk": {"S": item.sk},
                    key_attr: {"S": getattr(item, key_attr)},
                    "start_time": {"N": NumberAttribute().serialize(item.start_time)}}
            else:
                following[str(shard)] = start
        return [self._to_head(item) for item in page], {"shards": following}

    # -- history ------------------------------------------------------------------------
    def load_batches(self, run_id: str, after: int = 0, consistent: bool = True,
                     ) -> list[h.Batch]:
        """The run's batches numbered above `after` (all of them by default), in order.

        Batches never change once written, so an eventually consistent read (`consistent`
        False, half the RCU) can only miss the newest ones, never show a wrong one.
        """
        return self.history_page(run_id, after, consistent=consistent)[0]

    def history_page(self, run_id: str, after: int = 0, max_bytes: int | None = None,
                     consistent: bool = True) -> tuple[list[h.Batch], bool]:
        """The batches above `after` until they hold `max_bytes` of event JSON (at least
        one), and whether more follow."""
        B = self._batch
        condition = (B.sk.startswith("B#") if after == 0
                     else B.sk.between(_batch_sk(after + 1), "B#~"))
        batches: list[h.Batch] = []
        parts: list[Any] = []
        size = 0
        for item in B.query(f"R#{run_id}", condition, consistent_read=consistent):
            if not parts and max_bytes is not None and batches and size >= max_bytes:
                return batches, True  # `item` starts the next page
            parts.append(item)
            if len(parts) == int(parts[0].parts):
                batch = _to_batch(parts[0], parts, self.payloads)
                batches.append(batch)
                if max_bytes is not None:
                    size += len(dumps(batch.events))
                parts = []
        return batches, False

    def last_batch(self, run_id: str) -> h.Batch | None:
        """The newest batch of a run (its projection is authoritative)."""
        B = self._batch
        tail: list[Any] = []
        for item in B.query(f"R#{run_id}", B.sk.startswith("B#"), consistent_read=True,
                            scan_index_forward=False, page_size=4):
            tail.append(item)
            if len(item.sk) == 12:  # "B#" + 10 digits: the batch's first item
                return _to_batch(item, list(reversed(tail)), self.payloads)
        return None

    def append(self, run_id: str, batch: h.Batch) -> None:
        """Append `batch` at its number; `AppendConflict` if that number is taken.

        One conditional PutItem normally; a batch over one item's size is split into parts
        written in one transaction, each part conditional too.
        """
        B = self._batch
        body, _ = h.sized_body(batch, self.max_batch_bytes)
        chunks = self.payloads.seal_batch(body)
        sk = _batch_sk(batch.number)
        items = [B(f"R#{run_id}", sk if n == 0 else f"{sk}#{n:03d}", first=batch.first_event_id,
                   t=batch.time, decided=batch.decided, bz=chunk, parts=len(chunks),
                   consumed=(batch.consumed or None) if n == 0 else None)
                 for n, chunk in enumerate(chunks)]
        number_is_free = B.pk.does_not_exist()
        try:
            if len(items) == 1:
                items[0].save(condition=number_is_free)
                return
            with TransactWrite(connection=B._get_connection().connection) as tx:
                for item in items:
                    tx.save(item, condition=number_is_free)
        except (PutError, TransactWriteError) as exc:
            if _conditional_failed(exc) or _transaction_conflict(exc):
                raise AppendConflict(f"batch {batch.number} of run {run_id} exists") from None
            _refuse_if_too_large(exc, f"batch {batch.number} of run {run_id}")
            raise

    def iter_events(self, run_id: str) -> Iterator[h.Event]:
        for batch in self.load_batches(run_id):
            yield from batch.to_events()

    # -- callback outcomes ----------------------------------------------------------------
    def claim_callback(self, run_id: str, seq: int, outcome: dict[str, Any]) -> dict[str, Any]:
        """Record the outcome of callback `seq` unless one is there; return the one that is."""
        C = self._claim
        try:
            C(f"R#{run_id}", f"C#{seq}", outcome=self._put(outcome, "callback outcome")).save(
                condition=C.pk.does_not_exist())
            return outcome
        except PutError as exc:
            if not _conditional_failed(exc):
                raise
        return self.callback_claim(run_id, seq) or outcome

    def callback_claim(self, run_id: str, seq: int) -> dict[str, Any] | None:
        try:
            item = self._claim.get(f"R#{run_id}", f"C#{seq}", consistent_read=True)
        except self._claim.DoesNotExist:
            return None
        return self._get(item.outcome)

    # -- update outcomes ------------------------------------------------------------------
    def put_update_outcome(self, run_id: str, update_id: str, outcome: dict[str, Any]) -> None:
        """Record how update `update_id` ended; the first record stands (retries are no-ops)."""
        C = self._claim
        try:
            C(f"R#{run_id}", f"U#{update_id}", outcome=self._put(outcome, "update outcome")).save(
                condition=C.pk.does_not_exist())
        except PutError as exc:
            if not _conditional_failed(exc):
                raise

    def update_outcome(self, run_id: str, update_id: str) -> dict[str, Any] | None:
        try:
            item = self._claim.get(f"R#{run_id}", f"U#{update_id}", consistent_read=True)
        except self._claim.DoesNotExist:
            return None
        return self._get(item.outcome)

    # -- schedule items -------------------------------------------------------------------
    def create_schedule(self, record: ScheduleRecord) -> None:
        """Write a new schedule item; `ScheduleConflict` if the name is taken."""
        S = self._schedule
        item = S(SCHEDULES, f"S#{record.name}", wf_type=record.workflow_type,
                 args=self._put(record.args, "schedule arguments"),
                 expression=record.expression, tz=record.timezone,
                 overlap=record.overlap, created=record.created, anchor=record.anchor,
                 fired=0, skipped=0)
        try:
            item.save(condition=S.pk.does_not_exist())
        except PutError as exc:
            if _conditional_failed(exc):
                raise ScheduleConflict(record.name) from None
            raise

    def get_schedule(self, name: str) -> ScheduleRecord | None:
        try:
            item = self._schedule.get(SCHEDULES, f"S#{name}", consistent_read=True)
        except self._schedule.DoesNotExist:
            return None
        return _to_schedule(item, self.payloads)

    def list_schedules(self) -> list[ScheduleRecord]:
        S = self._schedule
        return [_to_schedule(item, self.payloads) for item in
                S.query(SCHEDULES, S.sk.startswith("S#"), consistent_read=True)]

    def delete_schedule(self, name: str) -> bool:
        """Delete the item; False if there was none."""
        S = self._schedule
        try:
            S(SCHEDULES, f"S#{name}").delete(condition=S.pk.exists())
        except DeleteError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def claim_firing(self, name: str, fire_time: float, expected: float | None, wid: str,
                     skipped: bool) -> None:
        """Move the last firing from `expected` to `fire_time`, unless another delivery moved
        it first (`ScheduleConflict`)."""
        S = self._schedule
        counter = S.skipped if skipped else S.fired
        unchanged = (S.last_fire.does_not_exist() if expected is None
                     else S.last_fire == expected)
        try:
            S(SCHEDULES, f"S#{name}").update(
                actions=[S.last_fire.set(fire_time), S.last_wid.set(wid), counter.add(1)],
                condition=S.pk.exists() & unchanged)
        except UpdateError as exc:
            if _conditional_failed(exc):
                raise ScheduleConflict(name) from None
            raise
