"""Sticky execution: W1-style per-step cost as the history grows, live instances on and off.

The real `Engine` decides `sequential(n)` over the in-memory stand-ins (as W1' does) at
n = 100, 500, 1,000 and 2,000 steps. With sticky execution on, a warm decider feeds the run's
live instance only the new events, so the cost per step should not grow with n; off, every
decision replays the whole history, so it grows linearly (the run costs O(n^2)).
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from .harness import Stopwatch, summarize
from .workloads import run_in_memory

STICKY_STEPS = (100, 500, 1000, 2000)


def _one(steps: int, sticky: bool) -> tuple[float, float]:
    gc.collect()
    watch = Stopwatch()
    _, batches = run_in_memory(steps, sticky=sticky)
    wall, cpu = watch.read()
    assert len(batches) == steps + 1
    return wall * 1000 / steps, cpu * 1000 / steps


def run_sticky(runs: int, verbose: bool, off_runs: int | None = None,
               sizes: tuple[int, ...] = STICKY_STEPS) -> list[dict[str, Any]]:
    """ms per step (wall and CPU), median/min/max over `runs` fresh runs, per size and mode."""
    run_in_memory(20)  # warm-up
    rows = []
    for steps in sizes:
        row: dict[str, Any] = {"steps": steps}
        # off, a 2,000-step run replays ~4 million events in all: one run of it is enough
        off = 1 if steps > 1000 else (off_runs or runs)
        for mode, sticky, n in (("on", True, runs), ("off", False, off)):
            samples = [_one(steps, sticky) for _ in range(n)]
            row[mode] = {"ms_per_step": summarize([s[0] for s in samples]),
                         "cpu_ms_per_step": summarize([s[1] for s in samples])}
            if verbose:
                shown = ", ".join(f"{s[0]:.3f}" for s in samples)
                print(f"  sticky {mode} {steps} steps: {shown} ms/step", file=sys.stderr,
                      flush=True)
        rows.append(row)
    return rows
