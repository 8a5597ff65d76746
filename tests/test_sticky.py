"""Sticky execution: a warm decider decides with the live instance of a run, fed only the new
events, and every such decision is exactly what a full replay decides; the instance is
evicted on a lost append, a failed task, a code change, history moving on, close and by the
LRU bounds."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import ostinato
from ostinato import workflow
from ostinato._core import history as h
from ostinato._core import keys, wire
from ostinato._engine import Engine
from ostinato._engine import sticky as st
from ostinato._engine.ports import Head
from ostinato._local.memory import MemStore, MemTransport
from tests.apps import core, mixed
from tests.replay_check import check_index, check_run
from tests.test_faults import run_mixed


@workflow
async def chain(ctx: ostinato.WorkflowContext, rounds: int, total: int = 0) -> dict[str, Any]:
    """Continue-as-new: an activity and a timer per run."""
    total += await ctx.execute_activity(core.echo, rounds)
    await ctx.sleep(timedelta(minutes=1))
    if rounds > 0:
        ctx.continue_as_new(rounds - 1, total)
    return {"total": total, "continued": ctx.info.continued_from is not None}


@workflow
async def nosy(ctx: ostinato.WorkflowContext, n: int) -> dict[str, Any]:
    """A query handler that touches everything it should not: the seeded random, the status
    and a patch. Asked of the live instance, it must change none of what the run decides."""
    ctx.on_query("peek", lambda: [ctx.random().random(), ctx.set_status("peeked"),
                                  ctx.patched("peek")])
    total = 0
    for i in range(n):
        total += await ctx.execute_activity(core.echo, i)
        ctx.set_status({"done": i})
    return {"total": total, "draw": ctx.random().randint(0, 10**9),
            "patched": ctx.patched("later")}


app = ostinato.App(
    workflows=[mixed.mixed, mixed.helper, core.statusful, core.racing, core.signals, core.local,
               core.sleeper, core.fan_out, chain, nosy],
    activities=[mixed.step, core.echo, core.flaky, core.async_double])


def watch(engine: Engine, on_append: Callable[[str], None] | None = None
          ) -> tuple[set[str], dict[tuple[str, int], bool]]:
    """Record every run the engine appended to, and for each decision whether it was sticky
    (keyed by run and the number of the batch it decided)."""
    runs: set[str] = set()
    sticky: dict[tuple[str, int], bool] = {}
    cache = engine.decider.sticky
    take = cache.take

    def recording_take(run_id: str, last: h.Batch, *args: Any) -> st.LiveRun | None:
        live = take(run_id, last, *args)
        sticky[run_id, last.number + 1] = live is not None
        return live

    def appended(wid: str, rid: str, events: list[h.Event]) -> None:
        runs.add(rid)
        if on_append is not None:
            on_append(rid)

    cache.take = recording_take  # type: ignore[method-assign]
    engine.on_events = appended
    return runs, sticky


def test_sticky_decisions_are_what_full_replay_decides(make_env):
    core.reset()
    env = make_env(app)
    engine = env.engine
    peeked: list[Any] = []

    def on_append(rid: str) -> None:
        # the cached index is the whole history's, after every decision
        batches = engine.history.load(env.runtime.store, rid)
        index, consumed = engine.history.take_index(rid, batches)
        check_index(batches, index)
        assert consumed == {k: b for b in batches for k in b.consumed}
        engine.history.keep(rid, batches, index, consumed)
        live = engine.decider.sticky.get(rid)
        if live is not None and "peek" in live.replayer.instance.query_handlers:
            peeked.append(live.replayer.query("peek", []))  # asked of the live instance

    runs, sticky = watch(engine, on_append)
    handles = {
        "statusful": env.client.start_workflow(core.statusful, id="st"),
        "racing": env.client.start_workflow(core.racing, id="race"),
        "signals": env.client.start_workflow(core.signals, id="sig"),
        "local": env.client.start_workflow(core.local, 3, id="local"),
        "sleeper": env.client.start_workflow(core.sleeper, 30, id="sleep"),
        "fan_out": env.client.start_workflow(core.fan_out, 6, id="fan"),
        "chain": env.client.start_workflow(chain, 3, id="chain"),
        "nosy": env.client.start_workflow(nosy, 6, id="nosy"),
    }
    run_mixed(env, ["mix-1", "mix-2"])  # signals, an update, a callback, a child, a timer
    handles["statusful"].signal("finish")
    for item in ("a", "b", "c", "d"):
        handles["signals"].signal("item", item)
    results = {name: handle.result(timeout=120) for name, handle in handles.items()}
    assert results["racing"] == {"winner": "activity", "wait_for_timed_out": "yes", "task": 42}
    assert results["signals"] == {"seen": ["a", "b", "c", "d", "no more"]}
    assert results["local"] == ["L", "ok on 3"]
    assert results["chain"] == {"total": 6, "continued": True}
    assert results["nosy"]["total"] == 15 and results["nosy"]["patched"] is True
    assert peeked and all(p[1:] == [None, True] for p in peeked)

    checked = 0
    for rid in runs:
        checked += check_run(app, env.runtime.store.load_batches(rid))
    hits = sum(sticky.values())
    # every decision checked (about 55: a round's activity invocations report together, so
    # a fan-out's outcomes share decisions)
    assert checked >= 50 and checked == len(runs) + len(sticky)
    # (nearly) every decision after a run's first was made by its live instance
    assert hits >= 40 and hits >= 0.9 * len(sticky), (hits, len(sticky))
    stats = engine.decider.sticky.stats
    assert stats[st.CLOSED] >= len(handles) + 4  # every run that closed dropped its instance
    assert len(engine.decider.sticky) == 0


# -- eviction, on the engine over the in-memory store --------------------------------------

NOW = 1_700_000_000.0
BIG = {"on": False}


@workflow
async def steps(ctx: ostinato.WorkflowContext, n: int) -> list[Any]:
    out = [await ctx.execute_activity(core.echo, i) for i in range(n)]
    if BIG["on"]:  # a decision too large to write: the task fails until the code is fixed
        await asyncio.gather(*(ctx.execute_activity(core.echo, "x" * 200_000)
                               for _ in range(20)))
    return out


@workflow(name="steps")
async def steps_changed(ctx: ostinato.WorkflowContext, n: int) -> list[Any]:
    await ctx.sleep(1)  # not what history recorded: non-determinism on replay
    return []


mem_app = ostinato.App(workflows=[steps], activities=[core.echo])


class Mem:
    """The real Engine(s) over one in-memory store and transport."""

    def __init__(self, *engines: str, app: ostinato.App = mem_app, **sticky: int) -> None:
        self.store, self.transport = MemStore(), MemTransport()
        self.engines = {name: Engine(app, self.store, self.transport, clock=lambda: NOW)
                        for name in engines or ("a",)}
        for engine in self.engines.values():
            if sticky:
                engine.decider.sticky = st.StickyCache(**sticky)
        self.seen = {name: watch(engine) for name, engine in self.engines.items()}

    def start(self, wid: str, wtype: str, *args: Any) -> str:
        rid = f"{wid}-r"
        self.store.heads[wid] = Head(wid, rid, wtype, h.RUNNING, NOW, list(args))
        self.transport.send_workflow_task(wire.Start(wid, rid, keys.start(rid)))
        return rid

    def step(self, engine: str = "a") -> bool:
        """One message: a workflow task to `engine`, or an activity task."""
        e = self.engines[engine]
        if self.transport.workflow:
            e.handle_workflow_messages([wire.Delivery(self.transport.workflow.popleft(), NOW)])
        elif self.transport.activity:
            e.handle_activity_task(self.transport.activity.popleft(), 1)
        else:
            return False
        return True

    def drain(self, engine: str = "a") -> None:
        while self.step(engine):
            pass

    def batches(self, rid: str) -> list[h.Batch]:
        return self.store.load_batches(rid)

    def stats(self, engine: str = "a") -> Counter[str]:
        return self.engines[engine].decider.sticky.stats


def result(mem: Mem, rid: str) -> Any:
    state = mem.batches(rid)[-1].state
    assert state["status"] == h.Status.COMPLETED, state
    return state["result"]


def test_a_warm_decider_decides_from_its_live_instance():
    mem = Mem()
    rid = mem.start("w", "steps", 20)
    mem.drain()
    assert result(mem, rid) == list(range(20))
    stats = mem.stats()
    assert stats[st.HIT] == 20 and stats[st.CLOSED] == 1  # every decision after the first
    assert check_run(mem_app, mem.batches(rid)) == 21


def test_two_deciders_racing_the_loser_evicts_and_replays_fully():
    mem = Mem("a", "b")
    rid = mem.start("w", "steps", 6)
    for _ in range(4):  # a: the start, an activity, its outcome, an activity
        mem.step("a")
    assert rid in mem.engines["a"].decider.sticky
    mem.step("b")  # b decides the next outcome: a's instance is now behind history
    mem.step("a")  # an activity
    mem.step("a")  # its outcome: a reads b's batch, so it replays in full
    assert mem.stats("a")[st.MOVED] == 1
    assert rid in mem.engines["a"].decider.sticky
    # a lost append: b decides the same message between a's read and a's write
    a, b = mem.engines["a"], mem.engines["b"]
    mem.step("a")  # run the activity a's last decision scheduled
    append = mem.store.append
    raced: list[int] = []

    def racing_append(run_id: str, batch: h.Batch) -> None:
        if not raced:
            raced.append(batch.number)
            b.handle_workflow_messages([wire.Delivery(pending, NOW)])  # b wins this number
        append(run_id, batch)

    pending = mem.transport.workflow.popleft()
    mem.store.append = racing_append  # type: ignore[method-assign]
    a.handle_workflow_messages([wire.Delivery(pending, NOW)])  # same message, twice
    mem.store.append = append  # type: ignore[method-assign]
    assert raced and mem.stats("a")[st.CONFLICT] == 1
    assert rid not in a.decider.sticky  # the loser kept nothing; b kept its own
    assert rid in b.decider.sticky
    mem.drain("a")
    assert result(mem, rid) == list(range(6))
    assert mem.stats("a")[st.COLD] >= 1  # after losing, a replayed the whole history
    assert check_run(mem_app, mem.batches(rid)) == len(mem.batches(rid))


def test_a_failed_task_on_a_live_instance_evicts_it():
    mem = Mem()
    rid = mem.start("w", "steps", 3)
    BIG["on"] = True  # once its three steps are done, the code decides too much at once
    try:
        while not any(not b.decided for b in mem.batches(rid)):
            assert mem.step()
    finally:
        BIG["on"] = False  # the fix is deployed
    assert rid not in mem.engines["a"].decider.sticky
    assert mem.stats()[st.FAILED] == 1
    assert mem.stats()[st.HIT] == 3  # it was the live instance that failed
    assert "history batch is" in mem.batches(rid)[-1].state["task_failure"]
    mem.drain()  # the retry: a full replay, then decisions from its instance again
    assert result(mem, rid) == [0, 1, 2]
    assert mem.stats()[st.COLD] == 1  # the retry after the failure replayed in full
    assert check_run(mem_app, mem.batches(rid)) == len(mem.batches(rid)) - 1


def test_a_code_change_evicts_and_non_determinism_fails_the_task():
    mem = Mem()
    rid = mem.start("w", "steps", 4)
    for _ in range(3):
        mem.step()
    assert rid in mem.engines["a"].decider.sticky
    decider = mem.engines["a"].decider
    decider.app = ostinato.App(workflows=[steps_changed], activities=[core.echo])
    mem.step()  # the activity
    mem.step()  # its outcome: the new code replays from event 1, and diverges
    assert mem.stats()[st.CODE] == 1
    assert "non-determinism" in mem.batches(rid)[-1].state["task_failure"]
    assert rid not in decider.sticky
    decider.app = mem_app  # rolled back
    mem.drain()
    assert result(mem, rid) == [0, 1, 2, 3]
    assert check_run(mem_app, mem.batches(rid)) == len(mem.batches(rid)) - 1


def test_the_lru_bounds_evict_the_least_recent_runs():
    mem = Mem(max_runs=2)
    rids = [mem.start(f"w{i}", "steps", 5) for i in range(3)]
    mem.drain()  # three runs interleaved through one decider that keeps two
    assert [result(mem, rid) for rid in rids] == [list(range(5))] * 3
    stats = mem.stats()
    assert stats[st.BOUND] >= 1 and stats[st.COLD] > 3
    for rid in rids:
        assert check_run(mem_app, mem.batches(rid)) == 6

    small = Mem(max_bytes=6_000)  # a byte budget: about two short histories
    rids = [small.start(f"w{i}", "steps", 5) for i in range(3)]
    small.drain()
    assert [result(small, rid) for rid in rids] == [list(range(5))] * 3
    assert small.stats()[st.BOUND] >= 1
    assert small.engines["a"].decider.sticky.bytes <= 6_000


def test_sticky_off_decides_the_same():
    off = Mem(max_runs=0)
    rid = off.start("w", "steps", 10)
    off.drain()
    assert result(off, rid) == list(range(10))
    assert off.stats()[st.HIT] == 0 and len(off.engines["a"].decider.sticky) == 0


@pytest.fixture(autouse=True)
def _big_off():
    BIG["on"] = False
    yield
    BIG["on"] = False
