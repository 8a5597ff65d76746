"""Racing writers against the storage adapter (`ostinato._aws.store.Store`), with real threads.

DESIGN §3.1: every state change is a conditional write, so of two racing writers exactly one
wins and the other re-reads. Each test runs on two backends: in-process moto with the global
dispatch lock (`_motolocal.serialize_dispatch`, what `ostinato dev` and the test environment
use) and DynamoDB Local, the official engine (`-m dynamodb_local`; see tests/dynamodb_local.py).
The interpreter's thread switch interval is shortened during these tests so that threads
interleave inside moto's request handling; the last test shows why the lock is needed.
"""

from __future__ import annotations

import base64
import contextlib
import random
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ostinato._aws.store import ITEM_CHUNK, Store
from ostinato._core import history as h
from ostinato._core import wire
from ostinato._core.serde import dumps
from ostinato._engine.ports import AppendConflict, Head, StartConflict
from ostinato._local import motoserver as _motolocal
from tests.dynamodb_local import (  # noqa: F401 - the fixtures, found by pytest by name
    Backend,
    backend_fixture,
    dynamodb_local_fixture,
    dynamodb_local_url_fixture,
    moto_locked_fixture,
)

THREADS = 8
JOIN_TIMEOUT = 120.0


@pytest.fixture(autouse=True)
def _interleave_often() -> Iterator[None]:
    """Switch threads every 100 µs (default 5 ms) so that races happen inside moto's handlers."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(before)


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None


def race(n: int, fn: Callable[[int], Any]) -> list[Outcome]:
    """Run fn(0..n-1) on n threads released together; every result or exception is kept."""
    barrier = threading.Barrier(n, timeout=JOIN_TIMEOUT)
    outcomes = [Outcome() for _ in range(n)]

    def run(i: int) -> None:
        try:
            barrier.wait()
            outcomes[i].value = fn(i)
        except BaseException as exc:
            outcomes[i].error = exc

    threads = [threading.Thread(target=run, args=(i,), name=f"racer-{i}", daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    return outcomes


def winners_of(outcomes: list[Outcome], loser_error: type[BaseException]) -> list[int]:
    """Indexes of the threads that succeeded; every other one must have lost with loser_error."""
    unexpected = [o.error for o in outcomes
                  if o.error is not None and not isinstance(o.error, loser_error)]
    assert not unexpected, f"unexpected errors: {unexpected!r}"
    return [i for i, o in enumerate(outcomes) if o.error is None]


def noise(seed: int, size: int) -> str:
    """`size` characters that do not compress much (base64 of random bytes)."""
    return base64.b64encode(random.Random(seed).randbytes(size * 3 // 4)).decode()


def make_batch(number: int, writer: int, first_event_id: int = 1, blob: str = "") -> h.Batch:
    """A batch whose every field says who wrote it."""
    events: list[tuple[str, dict[str, Any]]] = [
        ("MarkerRecorded", {"writer": writer, "number": number, "blob": blob}),
        ("ActivityTaskScheduled", {"seq": number, "writer": writer, "args": [writer, number]}),
    ]
    return h.Batch(
        number=number, first_event_id=first_event_id, time=100.0 + number + writer / 100,
        decided=writer % 2 == 0, events=events,
        outbox=[wire.SendActivity(wire.ActivityTask(  # stored without args, read back with
                    f"w{writer}", f"r{number}", number, "act", [writer, number],
                    {"task_queue": "default"}, writer, 1.0)),
                wire.CancelAt(f"timer-{writer}-{number}", scheduler=writer % 2 == 1)],
        consumed=[f"mk-{writer}-{number}"],
        state={"status": h.RUNNING, "writer": writer, "number": number})


def assert_same_batch(stored: h.Batch, expected: h.Batch) -> None:
    assert stored.number == expected.number
    assert stored.first_event_id == expected.first_event_id
    assert stored.time == pytest.approx(expected.time)
    assert stored.decided == expected.decided
    assert [tuple(e) for e in stored.events] == [tuple(e) for e in expected.events]
    assert stored.outbox == expected.outbox
    assert stored.consumed == expected.consumed
    assert stored.state == expected.state


def item_count(backend: Backend, store: Store, run_id: str) -> int:
    """Items under the run's partition, read raw (no adapter logic in between)."""
    if backend.name == "memory":  # one item per batch, whatever its size
        return len(store._runs[run_id].numbers)  # type: ignore[attr-defined]
    answer = backend.client().query(
        TableName=store.table_name, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"R#{run_id}"}}, Select="COUNT",
        ConsistentRead=True)
    return int(answer["Count"])


def batch_parts(backend: Backend, store: Store, run_id: str, number: int) -> int:
    """How many items the stored batch says it spans (its first item's `parts`)."""
    if backend.name == "memory":
        return 1
    item = backend.client().get_item(
        TableName=store.table_name, ConsistentRead=True,
        Key={"pk": {"S": f"R#{run_id}"}, "sk": {"S": f"B#{number:010d}"}})["Item"]
    return int(item["parts"]["N"])


# -------------------------------------------------------------------------------- (a)
def test_append_same_number_exactly_one_wins(backend: Backend) -> None:
    store = backend.new_store()
    for rnd in range(25):
        run = f"run-a{rnd}"
        prior = rnd % 3  # race at batch 1, 2 or 3
        for n in range(1, prior + 1):
            store.append(run, make_batch(n, writer=99, first_event_id=2 * n - 1))
        number = prior + 1
        candidates = [make_batch(number, writer=i, first_event_id=2 * number - 1)
                      for i in range(THREADS)]

        outcomes = race(THREADS, lambda i, run=run, c=candidates: store.append(run, c[i]))

        winners = winners_of(outcomes, AppendConflict)
        assert len(winners) == 1, f"round {rnd}: winners {winners}"
        stored = store.load_batches(run)
        assert [b.number for b in stored] == list(range(1, number + 1))
        assert_same_batch(stored[-1], candidates[winners[0]])
        assert item_count(backend, store, run) == number


# -------------------------------------------------------------------------------- (b)
def _race_heads(store: Store, wid: str, tag: str) -> Head:
    heads = [Head(workflow_id=wid, run_id=f"run-{tag}-{i}", workflow_type="T",
                  status=h.RUNNING, start_time=1000.0 + i, args=[tag, i])
             for i in range(THREADS)]
    outcomes = race(THREADS, lambda i: store.create_head(heads[i]))
    winners = winners_of(outcomes, StartConflict)
    assert len(winners) == 1, f"{wid}/{tag}: winners {winners}"
    winner = heads[winners[0]]
    for o in outcomes:
        if o.error is not None:
            assert isinstance(o.error, StartConflict)
            assert o.error.head is not None and o.error.head.run_id == winner.run_id
    return winner


def test_create_head_exactly_one_wins(backend: Backend) -> None:
    store = backend.new_store()
    for rnd in range(6):
        wid = f"wf-b{rnd}"
        first = _race_heads(store, wid, "first")
        head = store.get_head(wid)
        assert head is not None
        assert (head.run_id, head.status, head.args) == (first.run_id, h.RUNNING, first.args)

        # The run closes; the id is free again and exactly one restart wins.
        closed = {"status": "COMPLETED", "result": rnd, "close_time": 2000.0}
        assert store.project(wid, first.run_id, 1, closed)
        again = _race_heads(store, wid, "again")
        head = store.get_head(wid)
        assert head is not None
        assert head.run_id == again.run_id != first.run_id
        assert (head.status, head.batch, head.result, head.close_time) == (h.RUNNING, 0, None,
                                                                           None)


# -------------------------------------------------------------------------------- (c)
def test_concurrent_projections_end_at_the_highest_batch(backend: Backend) -> None:
    store = backend.new_store()
    stale = 2  # extra callers projecting a different (older) run of the same id
    for rnd in range(10):
        wid, run = f"wf-c{rnd}", f"run-c{rnd}"
        store.create_head(Head(wid, run, "T", h.RUNNING, 1.0, []))
        numbers = list(range(1, THREADS + 1))
        random.Random(rnd).shuffle(numbers)

        def state(n: int) -> dict[str, Any]:
            if n == THREADS:  # the highest batch closes the run
                return {"status": "COMPLETED", "custom_status": {"n": n}, "result": {"n": n},
                        "failure": None, "close_time": 50.0}
            return {"status": h.RUNNING, "custom_status": {"n": n}}

        def project(i: int, wid: str = wid, run: str = run,
                    numbers: list[int] = numbers) -> bool:
            if i >= THREADS:
                return store.project(wid, "some-older-run", 10_000, state(THREADS))
            n = numbers[i]
            failure = None if n % 2 or n == THREADS else f"task failure {n}"
            return store.project(wid, run, n, state(n), task_failure=failure)

        outcomes = race(THREADS + stale, project)

        assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
        assert outcomes[numbers.index(THREADS)].value is True  # nothing can beat the top
        assert all(o.value is False for o in outcomes[THREADS:])
        head = store.get_head(wid)
        assert head is not None
        assert (head.run_id, head.batch, head.status) == (run, THREADS, "COMPLETED")
        assert (head.custom_status, head.result, head.close_time) == ({"n": THREADS},
                                                                      {"n": THREADS}, 50.0)
        assert head.task_failure is None
        assert store.project(wid, run, THREADS - 1, state(1)) is False  # and it stays there


# -------------------------------------------------------------------------------- (d)
def test_big_multi_item_batch_racing_small_batches(backend: Backend) -> None:
    store = backend.new_store()
    for rnd in range(4):
        run = f"run-d{rnd}"
        store.append(run, make_batch(1, writer=99))
        size = 450_000 if rnd % 2 == 0 else 900_000  # 2 or 3 items in one TransactWrite
        candidates = [
            make_batch(2, writer=0, first_event_id=3, blob=noise(rnd, size)),
            make_batch(2, writer=1, first_event_id=3),
            make_batch(2, writer=2, first_event_id=3, blob=noise(rnd + 10, size)),
            make_batch(2, writer=3, first_event_id=3),
        ]
        # bodies are stored compressed: random text keeps them over one item
        assert len(zlib.compress(dumps(candidates[0].events).encode(), 6)) > ITEM_CHUNK

        outcomes = race(len(candidates), lambda i, run=run, c=candidates: store.append(run, c[i]))

        winners = winners_of(outcomes, AppendConflict)
        assert len(winners) == 1, f"round {rnd}: winners {winners}"
        winner = candidates[winners[0]]
        parts = batch_parts(backend, store, run, 2)
        if backend.name != "memory":  # the memory store keeps every batch in one item
            assert parts >= 2 if winner.events[0][1]["blob"] else parts == 1
        assert item_count(backend, store, run) == 1 + parts  # no stray part of a loser
        stored = store.load_batches(run)
        assert [b.number for b in stored] == [1, 2]
        assert_same_batch(stored[1], winner)
        last = store.last_batch(run)
        assert last is not None and (last.number, last.state) == (2, winner.state)

        # History goes on after a multi-item batch, and reads back whole.
        store.append(run, make_batch(3, writer=5, first_event_id=5))
        stored = store.load_batches(run)
        assert [b.number for b in stored] == [1, 2, 3]
        assert_same_batch(stored[1], winner)


# -------------------------------------------------------------------------------- (e)
def test_decider_loop_appends_without_gaps_or_duplicates(backend: Backend) -> None:
    store = backend.new_store()
    run, deciders, per_decider = "run-e", 6, 4
    # All deciders first read the empty history, then all append batch 1: at least
    # deciders - 1 conflicts are certain, so the retry path always runs.
    first_read = threading.Barrier(deciders, timeout=JOIN_TIMEOUT)

    def decider(w: int) -> int:
        """Read the history, append the next batch, on conflict re-read and try again."""
        conflicts = 0
        for k in range(per_decider):
            while True:
                batches = store.load_batches(run)
                if k == 0 and conflicts == 0:
                    first_read.wait()
                last = batches[-1] if batches else None
                number = last.number + 1 if last else 1
                events = [("MarkerRecorded", {"writer": w, "k": k, "i": i})
                          for i in range(1 + (w + k) % 3)]
                batch = h.Batch(number=number, first_event_id=last.next_event_id if last else 1,
                                time=float(number), decided=True, events=events,
                                consumed=[f"{w}:{k}"],
                                state={"status": h.RUNNING, "writer": w, "k": k})
                try:
                    store.append(run, batch)
                    break
                except AppendConflict:
                    conflicts += 1
                    assert conflicts < 10_000, "livelock"
        return conflicts

    outcomes = race(deciders, decider)

    assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
    assert sum(o.value for o in outcomes) >= deciders - 1
    batches = store.load_batches(run)
    total = deciders * per_decider
    assert [b.number for b in batches] == list(range(1, total + 1))
    next_id = 1
    for b in batches:  # each append was decided on the whole history before it
        assert b.first_event_id == next_id
        next_id = b.next_event_id
    keys = [b.consumed[0] for b in batches]
    assert sorted(keys) == sorted(f"{w}:{k}" for w in range(deciders)
                                  for k in range(per_decider))
    for w in range(deciders):  # one decider's batches appear in its own order
        mine = [b.state["k"] for b in batches if b.state["writer"] == w]
        assert mine == list(range(per_decider))
    for b in batches:
        assert {e[1]["writer"] for e in b.events} == {b.state["writer"]}
    last = store.last_batch(run)
    assert last is not None and last.number == total


# -------------------------------------------------------------------------------- (f)
def test_heartbeat_keeps_the_latest_attempt(backend: Backend) -> None:
    store = backend.new_store()
    for rnd in range(6):
        run = f"run-f{rnd}"
        attempts = list(range(1, THREADS + 1))
        random.Random(rnd).shuffle(attempts)
        outcomes = race(THREADS, lambda i, run=run, a=attempts: store.save_heartbeat(
            run, 1, a[i], {"attempt": a[i]}))
        assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
        assert store.load_heartbeat(run, 1) == {"attempt": THREADS}
        store.save_heartbeat(run, 1, 2, {"attempt": 2})  # a stale attempt loses quietly
        assert store.load_heartbeat(run, 1) == {"attempt": THREADS}


# -------------------------------------------------------------------------------- moto bare
@pytest.mark.xfail(strict=False, reason=(
    "moto without the dispatch lock is not atomic: racing conditional writes can all win or "
    "lose updates; the adapter relies on the lock (or on real DynamoDB), never on this"))
def test_moto_without_the_dispatch_lock_is_not_atomic(
        moto_locked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A demonstration, not a requirement: the same races with the lock made a no-op."""
    monkeypatch.setattr(_motolocal, "_lock", contextlib.nullcontext())
    sys.setswitchinterval(1e-6)  # the autouse fixture restores it
    store = Backend("moto-bare", None).new_store()
    failures: list[str] = []
    for rnd in range(10):  # stops at the first broken round: one is enough to show it
        run = f"run-g{rnd}"
        candidates = [make_batch(1, writer=i) for i in range(THREADS)]
        outcomes = race(THREADS, lambda i, run=run, c=candidates: store.append(run, c[i]))
        wins = [i for i, o in enumerate(outcomes) if o.error is None]
        errors = [o.error for o in outcomes
                  if o.error is not None and not isinstance(o.error, AppendConflict)]
        if len(wins) != 1 or errors:
            failures.append(f"append round {rnd}: {len(wins)} winners, errors {errors!r}")
            break
        wid = f"wf-g{rnd}"
        store.create_head(Head(wid, run, "T", h.RUNNING, 1.0, []))
        race(THREADS, lambda i, wid=wid, run=run: store.project(
            wid, run, i + 1, {"status": h.RUNNING, "custom_status": i + 1}))
        head = store.get_head(wid)
        if head is None or head.batch != THREADS:
            failures.append(f"project round {rnd}: head ends at batch {head and head.batch}")
            break
    assert not failures, failures
