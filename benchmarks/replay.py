"""Replay time of a long history, and the time to load that history from moto-DynamoDB.

Also replay at 10,000 and 50,000 events (`LONG_HISTORIES`), in ms/event: a decision replays
the whole run, so this is what each step of a long run costs its decider, and it should grow
linearly. Those histories are recorded by the real replay core driven forward (each task
decided once, as a decider with a sticky cache would), because running the engine would
replay every task again and take O(n^2); the shape and events match an engine run.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

from ostinato._core import history as h
from ostinato._core.replay import LocalOutcome, Replayer, info_from_started, replay_history

from . import apps
from .harness import REPLAY_ACTIVITIES, env, summarize, timed
from .workloads import history_shape, run_in_memory

#: Event counts of the long-history replays (about two events per activity).
LONG_HISTORIES = (10_000, 50_000)


def run_replay(runs: int, verbose: bool, load_runs: int = 3) -> dict[str, Any]:
    """Replay time of a ~1,000-event history (REPLAY_ACTIVITIES sequential activities)."""
    build_s, batches = run_in_memory(REPLAY_ACTIVITIES, run_id="replay", decode=False)
    definition = apps.app.workflow("sequential")
    events = sum(len(b.events) for b in batches)
    replay_history(definition, batches)  # warm-up
    stats = timed(lambda: _time_replay(definition, batches), runs, "replay ms", verbose)
    load = _time_moto_load(batches, load_runs)
    return {"events": events, "batches": len(batches), "build_in_memory_s": build_s,
            "replay_ms": stats, **load, "long": run_long_replays(runs, verbose)}


def run_long_replays(runs: int, verbose: bool) -> list[dict[str, Any]]:
    """Replay `sequential` histories of `LONG_HISTORIES` events: ms and ms/event (wall and
    CPU), median with min and max over `runs` replays after a warm-up."""
    _, engine_batches = run_in_memory(10, run_id="grown")
    if _events(grow_sequential(10)) != _events(engine_batches):
        raise RuntimeError("the grown history does not match what the engine records")
    definition = apps.app.workflow("sequential")
    found = []
    for target in LONG_HISTORIES:
        batches = grow_sequential((target - 2) // 2)
        events = sum(len(b.events) for b in batches)
        replay_history(definition, batches)  # warm-up
        walls, cpus = [], []
        for i in range(runs):
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            replayer = replay_history(definition, batches)
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
            assert replayer.instance.closed is not None
            if verbose:
                print(f"  replay of {events} events, run {i + 1}/{runs}: {walls[-1]:.0f} ms",
                      file=sys.stderr, flush=True)
        found.append({"events": events, "batches": len(batches), "ms": summarize(walls),
                      "ms_per_event": summarize([w / events for w in walls]),
                      "cpu_ms_per_event": summarize([c / events for c in cpus])})
    return found


def grow_sequential(steps: int, run_id: str = "grown") -> list[h.Batch]:
    """The history the engine records for `sequential(steps)`: one replayer decides each
    task once (an activity's completion in, the next activity out), and every batch goes
    through the store's JSON encoding, as a decider reads it back."""
    now = 1_700_000_000.0
    started = {"workflow_id": "mem", "run_id": run_id, "workflow_type": "sequential",
               "args": [steps], "attempt": 1, "start_time": now}
    replayer = Replayer(apps.app.workflow("sequential"), info_from_started(started, now),
                        apps.app.activities)
    inbound: list[tuple[str, dict[str, Any]]] = [(h.STARTED, started)]
    batches: list[h.Batch] = []
    while True:
        decision = replayer.decide(inbound, now, _no_local_activities)
        first = batches[-1].next_event_id if batches else 1
        batch = h.Batch(len(batches) + 1, first, now, True, decision.events, [], [],
                        decision.state(now))
        batches.append(h.decode_body(batch.number, first, now, True, [],
                                     h.encode_body(batch)))
        if decision.status != h.RUNNING:
            return batches
        (cmd,) = decision.commands
        assert isinstance(cmd, h.ScheduleActivity)
        inbound = [(h.ACTIVITY_COMPLETED, {"seq": cmd.seq, "attempt": 1,
                                           "result": cmd.args[0]})]


def _no_local_activities(cmd: h.RunLocalActivity, attempt: int) -> LocalOutcome:
    raise AssertionError("sequential runs no local activities")


def _events(batches: list[h.Batch]) -> list[list[tuple[str, dict[str, Any]]]]:
    return [b.events for b in batches]


def _time_replay(definition: Any, batches: list[h.Batch]) -> float:
    t0 = time.perf_counter()
    replayer = replay_history(definition, batches)
    elapsed = time.perf_counter() - t0
    assert replayer.instance.closed is not None
    return elapsed * 1000


def _time_moto_load(batches: list[h.Batch], runs: int = 3) -> dict[str, Any]:
    """Write the history into moto-DynamoDB, then time the decider's `load_batches` of it."""
    with env() as e:
        store = e.runtime.store
        for batch in batches:
            store.append("replay", batch)
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            loaded = store.load_batches("replay")
            samples.append((time.perf_counter() - t0) * 1000)
        assert history_shape(loaded) == history_shape(batches)
    return {"moto_load_batches_ms": summarize(samples)}
