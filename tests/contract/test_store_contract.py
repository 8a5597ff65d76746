"""The `Store` port's contract: every method's success and conflict paths, and pagination.

Runs on the in-memory store, the DynamoDB adapter on moto and on DynamoDB Local (`store` in
conftest.py): any answer that differs between them is a divergence and fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from ostinato._core import history as h
from ostinato._core import wire
from ostinato._core.errors import InvalidPageTokenError, PayloadTooLargeError
from ostinato._core.listing import HEAD_INLINE_BYTES, LIST_SHARDS, shard_of
from ostinato._engine.ports import (
    AppendConflict,
    Head,
    ScheduleConflict,
    ScheduleRecord,
    StartConflict,
)


def head(wid: str = "wf", run: str = "r1", start: float = 1000.0, wtype: str = "T",
         **extra: Any) -> Head:
    return Head(workflow_id=wid, run_id=run, workflow_type=wtype, status=h.RUNNING,
                start_time=start, args=[wid, {"n": 1}], **extra)


def batch(number: int, first: int = 1, blob: str = "", state: dict[str, Any] | None = None,
          ) -> h.Batch:
    events: list[tuple[str, dict[str, Any]]] = [
        ("MarkerRecorded", {"number": number, "blob": blob}),
        ("ActivityTaskScheduled", {"seq": number, "args": ["a", number]})]
    return h.Batch(number=number, first_event_id=first, time=100.5 + number,
                   decided=number % 2 == 0, events=events,
                   outbox=[wire.SendActivity(wire.ActivityTask(
                       "wf", "r1", number, "act", ["a", number], {"task_queue": "default"},
                       1, 1.0)), wire.CancelAt(f"timer-{number}", scheduler=True)],
                   consumed=[f"mk-{number}"],
                   state=state or {"status": h.RUNNING, "number": number})


def closed(result: Any = "done", status: str = h.Status.COMPLETED) -> dict[str, Any]:
    return {"status": status, "result": result, "close_time": 2000.25,
            "failure": None if status == h.Status.COMPLETED else {"message": "x"},
            "custom_status": {"stage": 3}}


# -- heads ------------------------------------------------------------------------------------
def test_a_head_reads_back_as_written(store: Any) -> None:
    assert store.get_head("wf") is None
    written = head(continued_from="r0", deadline=5000.5, parent={"workflow_id": "p", "seq": 2})
    store.create_head(written)
    got = store.get_head("wf")
    assert got == Head(workflow_id="wf", run_id="r1", workflow_type="T", status=h.RUNNING,
                       start_time=1000.0, args=["wf", {"n": 1}], continued_from="r0",
                       deadline=5000.5, parent={"workflow_id": "p", "seq": 2})
    got.args.append("mutated")  # a reader's copy is its own
    assert store.get_head("wf").args == ["wf", {"n": 1}]


def test_a_running_id_refuses_a_second_start_naming_the_run(store: Any) -> None:
    store.create_head(head(run="r1"))
    with pytest.raises(StartConflict) as raised:
        store.create_head(head(run="r2"))
    assert raised.value.head is not None and raised.value.head.run_id == "r1"
    assert store.get_head("wf").run_id == "r1"


def test_a_closed_id_takes_a_new_run_but_never_the_same_run_twice(store: Any) -> None:
    store.create_head(head(run="r1"))
    assert store.project("wf", "r1", 1, closed())
    with pytest.raises(StartConflict) as raised:  # a retried start of r1 must not reset it
        store.create_head(head(run="r1"))
    assert raised.value.head.status == h.Status.COMPLETED
    store.create_head(head(run="r2", start=1500.0))
    got = store.get_head("wf")
    assert (got.run_id, got.status, got.batch, got.result, got.close_time, got.failure,
            got.custom_status, got.start_time) == ("r2", h.RUNNING, 0, None, None, None, None,
                                                    1500.0)


def test_only_new_refuses_any_id_that_ever_ran(store: Any) -> None:
    store.create_head(head(run="r1"), only_new=True)
    assert store.project("wf", "r1", 1, closed())
    with pytest.raises(StartConflict) as raised:
        store.create_head(head(run="r2"), only_new=True)
    assert raised.value.head.run_id == "r1"


def test_replacing_takes_over_only_from_the_named_run(store: Any) -> None:
    with pytest.raises(StartConflict) as raised:
        store.create_head(head(run="r2"), replacing="r1")
    assert raised.value.head is None
    store.create_head(head(run="r1"))
    with pytest.raises(StartConflict):
        store.create_head(head(run="r2"), replacing="r0")
    store.create_head(head(run="r2"), replacing="r1")  # even though r1 is RUNNING
    assert store.get_head("wf").run_id == "r2"
    with pytest.raises(StartConflict):  # a repeated attempt finds r2 there, not r1
        store.create_head(head(run="r2"), replacing="r1")


def test_projection_moves_forward_only_on_its_own_run(store: Any) -> None:
    assert not store.project("missing", "r1", 1, {"status": h.RUNNING})
    store.create_head(head())
    assert store.project("wf", "r1", 2, {"status": h.RUNNING, "custom_status": "half"},
                         task_failure="boom")
    got = store.get_head("wf")
    assert (got.batch, got.custom_status, got.task_failure) == (2, "half", "boom")
    assert not store.project("wf", "r1", 2, {"status": h.RUNNING})  # not newer
    assert not store.project("wf", "r1", 1, {"status": h.RUNNING})  # older
    assert not store.project("wf", "other", 9, {"status": h.RUNNING})  # another run
    assert store.project("wf", "r1", 3, {"status": h.RUNNING})
    got = store.get_head("wf")
    assert (got.batch, got.custom_status, got.task_failure) == (3, None, None)


def test_closing_projection_records_the_outcome(store: Any) -> None:
    store.create_head(head())
    assert store.project("wf", "r1", 4, closed(result={"total": 7}, status=h.Status.FAILED),
                         task_failure="x" * 5000)
    got = store.get_head("wf")
    assert (got.status, got.batch, got.result, got.close_time, got.failure,
            got.custom_status, got.result_spilled) == (
        h.Status.FAILED, 4, {"total": 7}, 2000.25, {"message": "x"}, {"stage": 3}, False)
    assert got.task_failure == "x" * 2000


def test_a_large_result_stays_in_the_batch_not_the_head(store: Any) -> None:
    store.create_head(head())
    assert store.project("wf", "r1", 1, closed(result="y" * (HEAD_INLINE_BYTES + 10)))
    got = store.get_head("wf")
    assert (got.result, got.result_spilled, got.status) == (None, True, h.Status.COMPLETED)


# -- listing ----------------------------------------------------------------------------------
def _populate(store: Any, n: int = 30) -> list[str]:
    """`n` workflows, one start second apart; every third closed, types alternating."""
    ids = []
    for i in range(n):
        wid = f"w{i:03d}"
        store.create_head(head(wid, f"r{i}", start=1000.0 + i, wtype="A" if i % 2 else "B"))
        if i % 3 == 0:
            assert store.project(wid, f"r{i}", 1, closed(result=i))
        ids.append(wid)
    return ids


def _all_pages(store: Any, limit: int, **filters: Any) -> tuple[list[Head], int]:
    heads: list[Head] = []
    key, pages = None, 0
    while True:
        page, key = store.list_heads(limit=limit, start_key=key, **filters)
        pages += 1
        heads += page
        if key is None:
            return heads, pages


def test_listing_is_newest_first_and_shows_no_arguments(store: Any) -> None:
    ids = _populate(store)
    assert len({shard_of(w) for w in ids}) == LIST_SHARDS
    page, key = store.list_heads(limit=100)
    assert key is None
    assert [hd.workflow_id for hd in page] == ids[::-1]
    assert all(hd.args == [] for hd in page)
    first = next(hd for hd in page if hd.workflow_id == "w003")
    assert (first.status, first.result, first.close_time, first.run_id, first.workflow_type) \
        == (h.Status.COMPLETED, 3, 2000.25, "r3", "A")


@pytest.mark.parametrize("limit", [1, 4, 7, 30])
def test_pages_cover_every_workflow_once_in_order(store: Any, limit: int) -> None:
    ids = _populate(store)
    heads, pages = _all_pages(store, limit)
    assert [hd.workflow_id for hd in heads] == ids[::-1]
    assert pages == -(-len(ids) // limit)  # a full last page carries no token


@pytest.mark.parametrize("filters", [
    {"status": h.Status.COMPLETED}, {"status": h.RUNNING}, {"workflow_type": "A"},
    {"status": h.RUNNING, "workflow_type": "B"},
    {"started_after": 1005.0, "started_before": 1020.0},
    {"workflow_type": "A", "started_after": 1010.0},
    {"status": h.Status.COMPLETED, "started_before": 1012.0},
])
def test_filters_page_as_they_list(store: Any, filters: dict[str, Any]) -> None:
    ids = _populate(store)

    def wanted(i: int) -> bool:
        status = h.Status.COMPLETED if i % 3 == 0 else h.RUNNING
        return (filters.get("status", status) == status
                and filters.get("workflow_type", "A" if i % 2 else "B") == (
                    "A" if i % 2 else "B")
                and filters.get("started_after", 0) <= 1000 + i
                <= filters.get("started_before", 1e12))

    expected = [w for i, w in enumerate(ids) if wanted(i)][::-1]
    heads, _ = _all_pages(store, 3, **filters)
    assert [hd.workflow_id for hd in heads] == expected
    assert store.list_heads(limit=100, **filters)[0] == heads


def test_forged_and_foreign_page_tokens_are_refused(store: Any) -> None:
    _populate(store)
    _, by_status = store.list_heads(status=h.RUNNING, limit=2)
    _, by_any = store.list_heads(limit=2)
    assert by_status is not None and by_any is not None
    forged: list[Any] = [{}, {"shards": {}}, {"shards": {"9": None}}, {"shards": {"x": None}},
                         "token", {"shards": {"0": {"pk": {"S": "R#x"}}}}]
    for token in forged:
        with pytest.raises(InvalidPageTokenError):
            store.list_heads(start_key=token)
    with pytest.raises(InvalidPageTokenError):  # a status listing's token, given to another
        store.list_heads(workflow_type="A", start_key=by_status)
    with pytest.raises(InvalidPageTokenError):
        store.list_heads(status=h.RUNNING, start_key=by_any)
    with pytest.raises(InvalidPageTokenError):  # outside the time range it was made for
        store.list_heads(start_key=by_any, started_before=1001.0)


def test_a_page_token_survives_a_json_round_trip(store: Any) -> None:
    import json

    ids = _populate(store, 12)
    page, key = store.list_heads(limit=5)
    rest, end = store.list_heads(limit=100, start_key=json.loads(json.dumps(key)))
    assert end is None
    assert [hd.workflow_id for hd in page + rest] == ids[::-1]


# -- history ----------------------------------------------------------------------------------
def _same(stored: h.Batch, expected: h.Batch) -> None:
    assert (stored.number, stored.first_event_id, stored.time, stored.decided) == (
        expected.number, expected.first_event_id, expected.time, expected.decided)
    assert [tuple(e) for e in stored.events] == [tuple(e) for e in expected.events]
    assert (stored.outbox, stored.consumed, stored.state) == (
        expected.outbox, expected.consumed, expected.state)


def test_batches_read_back_in_order_after_any_number(store: Any) -> None:
    assert store.load_batches("r1") == [] and store.last_batch("r1") is None
    written = [batch(n, first=2 * n - 1) for n in (1, 2, 3, 4)]
    for b in written:
        store.append("r1", b)
    for after in range(5):
        got = store.load_batches("r1", after=after)
        assert [b.number for b in got] == [1, 2, 3, 4][after:]
        for g, w in zip(got, written[after:], strict=True):
            _same(g, w)
    assert [b.number for b in store.load_batches("r1", consistent=False)] == [1, 2, 3, 4]
    _same(store.last_batch("r1"), written[-1])
    assert [e.event_id for e in store.iter_events("r1")] == list(range(1, 9))
    assert store.load_batches("r2") == []


def test_a_taken_batch_number_is_an_append_conflict(store: Any) -> None:
    store.append("r1", batch(1))
    store.append("r1", batch(2, first=3))
    with pytest.raises(AppendConflict):
        store.append("r1", batch(2, first=3, state={"status": h.RUNNING, "other": True}))
    _same(store.load_batches("r1")[-1], batch(2, first=3))
    store.append("r2", batch(1))  # numbers are per run


def test_numbers_are_keys_not_a_counter(store: Any) -> None:
    store.append("r1", batch(3, first=5))
    store.append("r1", batch(1))
    assert [b.number for b in store.load_batches("r1")] == [1, 3]
    assert store.last_batch("r1").number == 3
    store.append("r1", batch(2, first=3))
    assert [b.number for b in store.load_batches("r1", after=1)] == [2, 3]


def test_a_batch_too_large_for_one_transaction_is_refused_unwritten(store: Any) -> None:
    with pytest.raises(PayloadTooLargeError):
        store.append("r1", batch(1, blob="z" * (h.MAX_BATCH_BYTES + 1)))
    assert store.load_batches("r1") == []


def test_a_large_batch_reads_back_whole(store: Any) -> None:
    import base64
    import random

    blob = base64.b64encode(random.Random(1).randbytes(600_000)).decode()  # > one item
    store.append("r1", batch(1))
    store.append("r1", batch(2, first=3, blob=blob))
    store.append("r1", batch(3, first=5))
    assert [b.number for b in store.load_batches("r1")] == [1, 2, 3]
    _same(store.load_batches("r1", after=1)[0], batch(2, first=3, blob=blob))
    with pytest.raises(AppendConflict):
        store.append("r1", batch(2, first=3))


def test_history_pages_stop_at_the_byte_budget(store: Any) -> None:
    from ostinato._core.serde import dumps

    written = [batch(n, first=2 * n - 1, blob="b" * 100) for n in range(1, 6)]
    for b in written:
        store.append("r1", b)
    size = len(dumps(written[0].events))
    assert store.history_page("r1") == (store.load_batches("r1"), False)
    page, more = store.history_page("r1", max_bytes=1)
    assert ([b.number for b in page], more) == ([1], True)
    page, more = store.history_page("r1", max_bytes=size * 2)
    assert ([b.number for b in page], more) == ([1, 2], True)
    page, more = store.history_page("r1", after=2, max_bytes=size * 2 + 1)
    assert ([b.number for b in page], more) == ([3, 4, 5], False)
    page, more = store.history_page("r1", after=3, max_bytes=size * 2)
    assert ([b.number for b in page], more) == ([4, 5], False)
    assert store.history_page("r1", after=5, max_bytes=10) == ([], False)


# -- outcomes and heartbeats --------------------------------------------------------------------
def test_the_first_callback_claim_stands(store: Any) -> None:
    assert store.callback_claim("r1", 3) is None
    first = {"ok": True, "value": [1, 2]}
    assert store.claim_callback("r1", 3, first) == first
    assert store.claim_callback("r1", 3, {"ok": False}) == first
    assert store.callback_claim("r1", 3) == first
    assert store.callback_claim("r1", 4) is None
    assert store.claim_callback("r2", 3, {"ok": False}) == {"ok": False}


def test_the_first_update_outcome_stands(store: Any) -> None:
    assert store.update_outcome("r1", "u1") is None
    store.put_update_outcome("r1", "u1", {"result": 1})
    store.put_update_outcome("r1", "u1", {"result": 2})
    assert store.update_outcome("r1", "u1") == {"result": 1}
    assert store.update_outcome("r1", "u2") is None
    assert store.update_outcome("r2", "u1") is None


def test_heartbeats_keep_the_latest_attempt(store: Any) -> None:
    assert store.load_heartbeat("r1", 1) is None
    store.save_heartbeat("r1", 1, 2, {"at": "a2"})
    store.save_heartbeat("r1", 1, 1, {"at": "stale"})
    assert store.load_heartbeat("r1", 1) == {"at": "a2"}
    store.save_heartbeat("r1", 1, 2, {"at": "a2 again"})
    assert store.load_heartbeat("r1", 1) == {"at": "a2 again"}
    store.save_heartbeat("r1", 1, 3, None)
    assert store.load_heartbeat("r1", 1) is None
    assert store.load_heartbeat("r1", 2) is None


def test_the_cancel_flag_is_read_back_by_heartbeats(store: Any) -> None:
    assert store.heartbeat_state("r1", 4) == (None, False)
    assert store.save_heartbeat("r1", 4, 1, {"done": 1}) is False
    store.request_activity_cancel("r1", 4)
    store.request_activity_cancel("r1", 4)  # a repeated request changes nothing
    assert store.heartbeat_state("r1", 4) == ({"done": 1}, True)
    assert store.save_heartbeat("r1", 4, 1, {"done": 2}) is True   # the write returns the flag
    assert store.save_heartbeat("r1", 4, 0, {"stale": 1}) is False  # a stale attempt loses
    assert store.heartbeat_state("r1", 4) == ({"done": 2}, True)
    store.request_activity_cancel("r1", 5)  # before any heartbeat: the first one learns it
    assert store.heartbeat_state("r1", 5) == (None, True)
    assert store.save_heartbeat("r1", 5, 1, None) is True


# -- schedule items -----------------------------------------------------------------------------
def record(name: str, **extra: Any) -> ScheduleRecord:
    return ScheduleRecord(name=name, workflow_type="T", args=[name, 1],
                          expression="rate(5 minutes)", timezone="UTC", overlap="skip",
                          created=100.0, **extra)


def test_schedule_items_are_created_once_listed_by_name_and_deleted(store: Any) -> None:
    assert store.get_schedule("b") is None and store.list_schedules() == []
    for name in ("b", "a", "c-1"):
        store.create_schedule(record(name, anchor=50.5 if name == "a" else None))
    with pytest.raises(ScheduleConflict):
        store.create_schedule(record("b"))
    assert [r.name for r in store.list_schedules()] == ["a", "b", "c-1"]
    assert store.get_schedule("a") == record("a", anchor=50.5)
    assert store.delete_schedule("b") is True
    assert store.delete_schedule("b") is False
    assert store.get_schedule("b") is None
    store.create_schedule(record("b"))  # the name is free again


def test_firings_are_claimed_against_the_last_one_seen(store: Any) -> None:
    with pytest.raises(ScheduleConflict):
        store.claim_firing("s", 200.0, None, "w1", skipped=False)
    store.create_schedule(record("s"))
    store.claim_firing("s", 200.0, None, "w1", skipped=False)
    with pytest.raises(ScheduleConflict):  # another delivery of the same firing
        store.claim_firing("s", 200.0, None, "w1", skipped=False)
    with pytest.raises(ScheduleConflict):
        store.claim_firing("s", 500.0, 100.0, "w2", skipped=False)
    store.claim_firing("s", 500.5, 200.0, "w1", skipped=True)
    got = store.get_schedule("s")
    assert (got.last_fire, got.last_wid, got.fired, got.skipped) == (500.5, "w1", 1, 1)
    store.claim_firing("s", 800.0, 500.5, "w3", skipped=False)
    got = store.list_schedules()[0]
    assert (got.last_fire, got.last_wid, got.fired, got.skipped) == (800.0, "w3", 2, 1)
