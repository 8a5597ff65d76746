"""Replay time of a long history, and the time to load that history from moto-DynamoDB."""

from __future__ import annotations

import time
from typing import Any

from ostinato._core import history as h
from ostinato._core.replay import replay_history

from . import apps
from .harness import REPLAY_ACTIVITIES, env, summarize, timed
from .workloads import history_shape, run_in_memory


def run_replay(runs: int, verbose: bool, load_runs: int = 3) -> dict[str, Any]:
    """Replay time of a ~1,000-event history (REPLAY_ACTIVITIES sequential activities)."""
    build_s, batches = run_in_memory(REPLAY_ACTIVITIES, run_id="replay", decode=False)
    definition = apps.app.workflow("sequential")
    events = sum(len(b.events) for b in batches)
    replay_history(definition, batches)  # warm-up
    stats = timed(lambda: _time_replay(definition, batches), runs, "replay ms", verbose)
    load = _time_moto_load(batches, load_runs)
    return {"events": events, "batches": len(batches), "build_in_memory_s": build_s,
            "replay_ms": stats, **load}


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
