"""The workloads W1-W4 on moto, and W1' (the engine alone, over in-memory stand-ins)."""

from __future__ import annotations

import time

from ostinato._core import history as h
from ostinato._core import keys, wire
from ostinato._engine import Engine
from ostinato._engine.ports import Head
from ostinato._engine.sticky import StickyCache
from ostinato._local.memory import MemStore, MemTransport

from . import apps
from .harness import (
    W1_STEPS,
    W2_STEPS,
    W2_WORKFLOWS,
    W3_FANOUT,
    W4_SLEEP,
    Stopwatch,
    check_clean,
    env,
    warm_env,
)


def run_w1(steps: int = W1_STEPS, backend: str = "moto") -> dict[str, float]:
    """W1: one workflow of `steps` sequential activities; ms per step (start to result)."""
    with warm_env(backend) as e:
        watch = Stopwatch()
        result = e.client.start_workflow(apps.sequential, steps, id="w1").result()
        wall, cpu = watch.read()
        check_clean(e)
    assert result == steps * (steps - 1) // 2, result
    return {"ms_per_step": wall * 1000 / steps, "cpu_ms_per_step": cpu * 1000 / steps}


def run_w2(backend: str = "moto") -> dict[str, float]:
    """W2: start W2_WORKFLOWS workflows of W2_STEPS activities, then drive them all together."""
    with warm_env(backend) as e:
        closed: set[str] = set()

        def on_events(wid: str, _rid: str, events: list[h.Event]) -> None:
            if any(ev.event_type in h.CLOSING for ev in events):
                closed.add(wid)

        e.engine.on_events = on_events  # completion without polling DynamoDB
        watch = Stopwatch()
        handles = [e.client.start_workflow(apps.sequential, W2_STEPS, id=f"w2-{i}")
                   for i in range(W2_WORKFLOWS)]
        started, _ = watch.read()
        e.run_until(lambda: len(closed) == W2_WORKFLOWS)
        wall, cpu = watch.read()
        check_clean(e)
        expected = W2_STEPS * (W2_STEPS - 1) // 2
        for hd in handles:  # verification, outside the timed part
            assert hd.describe().result == expected
    steps = W2_WORKFLOWS * W2_STEPS
    return {"steps_per_s": steps / wall, "cpu_steps_per_s": steps / cpu,
            "drive_steps_per_s": steps / (wall - started),
            "start_ms_per_workflow": started * 1000 / W2_WORKFLOWS, "wall_s": wall}


def run_w3(backend: str = "moto") -> dict[str, float]:
    """W3: one workflow gathering W3_FANOUT activities; wall ms start to result."""
    with warm_env(backend) as e:
        watch = Stopwatch()
        result = e.client.start_workflow(apps.fan_out, W3_FANOUT, id="w3").result()
        wall, cpu = watch.read()
        check_clean(e)
    assert result == W3_FANOUT * (W3_FANOUT - 1) // 2
    return {"wall_ms": wall * 1000, "cpu_ms": cpu * 1000}


def run_w4(backend: str = "moto") -> dict[str, float]:
    """W4: ctx.sleep(1 s) then one activity; wall ms, and the virtual seconds that passed."""
    with warm_env(backend) as e:
        v0 = e.clock()
        watch = Stopwatch()
        result = e.client.start_workflow(apps.sleep_then_activity, W4_SLEEP, id="w4").result()
        wall, cpu = watch.read()
        virtual = e.clock() - v0
        check_clean(e)
    assert result == "woke"
    return {"wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "virtual_s": virtual}


def run_w1_core() -> dict[str, float]:
    """W1': W1's workflow decided by the real Engine over in-memory stand-ins."""
    watch = Stopwatch()
    run_in_memory(W1_STEPS)
    wall, cpu = watch.read()
    return {"ms_per_step": wall * 1000 / W1_STEPS, "cpu_ms_per_step": cpu * 1000 / W1_STEPS}


def run_in_memory(steps: int, run_id: str = "r1", decode: bool = True, sticky: bool = True
                  ) -> tuple[float, list[h.Batch]]:
    """The real `Engine` deciding `sequential(steps)` over MemStore/MemTransport.

    No moto, botocore, pynamodb, SQS event shaping or Powertools: what is left is replay,
    command handling, JSON and the engine's own bookkeeping. Returns (seconds, batches).
    `sticky=False` keeps no live instance, so every decision replays the whole history.
    """
    now = 1_700_000_000.0
    store, transport = MemStore(decode), MemTransport()
    engine = Engine(apps.app, store, transport, clock=lambda: now)  # type: ignore[arg-type]
    if not sticky:
        engine.decider.sticky = StickyCache(max_runs=0)
    t0 = time.perf_counter()
    store.heads["mem"] = Head("mem", run_id, "sequential", h.RUNNING, now, [steps])
    transport.send_workflow_task(wire.Start("mem", run_id, keys.start(run_id)))
    while transport.workflow or transport.activity:
        while transport.workflow:
            engine.handle_workflow_messages([wire.Delivery(transport.workflow.popleft(), now)])
        while transport.activity:
            engine.handle_activity_task(transport.activity.popleft(), 1)
    elapsed = time.perf_counter() - t0
    store.decode = True  # what a reader of the stored items gets
    batches = store.load_batches(run_id)
    if batches[-1].state.get("status") != h.Status.COMPLETED:
        raise RuntimeError(f"in-memory run did not complete: {batches[-1].state}")
    return elapsed, batches


def history_shape(batches: list[h.Batch]) -> list[list[str]]:
    return [[etype for etype, _ in b.events] for b in batches]


def check_in_memory_matches_moto(steps: int = 10) -> bool:
    """The in-memory engine run records the same history shape as the moto one."""
    with env() as e:
        handle = e.client.start_workflow(apps.sequential, steps, id="shape")
        handle.result()
        moto_batches = e.runtime.store.load_batches(handle.current_run_id())
    _, mem_batches = run_in_memory(steps)
    return history_shape(moto_batches) == history_shape(mem_batches)
