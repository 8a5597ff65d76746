"""`python -m ostinato._local.sim [--schedules N] [--seed S] [--workflows W] [--jobs J]`.

Runs N seeded schedules (seeds S, S+1, ...), each a random workload under seeded faults
and, on the memory backend, under one seeded scheduler making every other choice
(`choices.SeededScheduler`: handler order, SQS delivery order and duplicates, batch sizes,
delays, throttling, Lambda timeouts and crashes, stale reads); checks the invariants after
each, prints what each kind of choice and fault did, the command replaying the first failing
seed, and ends with `simulation: N schedules, V violations`. Exit status 1 when any
invariant broke.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")

#: Where each memory schedule's virtual clock starts: a fixed instant, so that what depends
#: on the time of day (batching windows, cron occurrences) replays too.
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Summary:
    """What a share of the seeds found."""

    violations: int = 0
    runs: int = 0
    actions: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)  # choices and faults, by kind
    failing: list[tuple[int, list[str]]] = field(default_factory=list)

    def add(self, other: Summary) -> None:
        self.violations += other.violations
        self.runs += other.runs
        self.actions += other.actions
        self.faults.update(other.faults)
        self.kinds.update(other.kinds)
        self.failing += other.failing


def run_seeds(seeds: list[int], backend: str, workflows: int, fault_rate: float) -> Summary:
    """Play each seed (in a fresh memory stack each, or one shared moto environment)."""
    from ...testing import WorkflowEnvironment
    from ..faults import FaultInjector
    from ..memory.faults import MemoryFaultInjector
    from .choices import SeededScheduler, rates_for
    from .driver import play
    from .workload import app

    summary = Summary()
    shared = None if backend == "memory" else WorkflowEnvironment(app, backend="moto")
    if shared is not None:  # a moto environment takes seconds to build: one for all seeds
        shared.__enter__()
    try:
        for seed in seeds:
            injector: Any = None
            if shared is None:  # each seed in a fresh memory stack, so it replays alone
                scheduler = SeededScheduler(seed, rates_for(fault_rate))
                if fault_rate:
                    injector = MemoryFaultInjector(scheduler.plan)
                with WorkflowEnvironment(app, backend="memory", start_time=START) as env:
                    outcome = play(env, seed, workflows, injector, scheduler=scheduler)
                summary.kinds.update(scheduler.counts)
            else:
                injector = FaultInjector.seeded(seed, fault_rate) if fault_rate else None
                outcome = play(shared, seed, workflows, injector)
            summary.runs += outcome.runs
            summary.actions += outcome.actions
            summary.kinds.update(outcome.kinds)
            if injector is not None:
                summary.faults.update(f"{call.operation} {when}"
                                      for call, when in injector.injected)
                summary.kinds.update(when for _, when in injector.injected
                                     if not when.startswith("kill"))  # counted by kind
            if outcome.violations:
                summary.violations += len(outcome.violations)
                summary.failing.append((seed, outcome.violations))
    finally:
        if shared is not None:
            shared.__exit__(None, None, None)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workflows", type=int, default=4, help="workflows per schedule")
    parser.add_argument("--fault-rate", type=float, default=0.04,
                        help="share of AWS calls failed, half before and half after they act")
    parser.add_argument("--backend", default="memory", choices=["memory", "moto"],
                        help="the WorkflowEnvironment backend; faults are injected at its "
                        "AWS calls (the memory clients, or botocore for moto)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes to share the seeds among (memory backend)")
    opts = parser.parse_args(argv)

    began = time.perf_counter()
    seeds = list(range(opts.seed, opts.seed + opts.schedules))
    args = (opts.backend, opts.workflows, opts.fault_rate)
    if opts.jobs > 1 and opts.backend == "memory":  # seeds are independent: one per process
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(opts.jobs) as pool:
            parts = pool.starmap(run_seeds, [(seeds[i::opts.jobs], *args)
                                             for i in range(opts.jobs)])
    else:
        parts = [run_seeds(seeds, *args)]
    summary = Summary()
    for part in parts:
        summary.add(part)
    for seed, lines in sorted(summary.failing):
        print(f"seed {seed}: {len(lines)} violation(s)")
        for line in lines[:10]:
            print(f"  {line}")
    violations, runs, actions, faults = (summary.violations, summary.runs, summary.actions,
                                         summary.faults)
    first_failing = min((seed for seed, _ in summary.failing), default=None)
    took = time.perf_counter() - began
    print(f"faults injected: {sum(faults.values())} "
          f"({', '.join(f'{k} {n}' for k, n in faults.most_common(8))})")
    print("choices and faults by kind: "
          + (", ".join(f"{k} {n}" for k, n in summary.kinds.most_common()) or "none"))
    print(f"{opts.schedules} schedules in {took:.1f} s: {runs} workflows checked, "
          f"{actions} outside actions")
    from .driver import schedule_command

    if first_failing is not None:
        options = [*(["--fault-rate", str(opts.fault_rate)]
                     if opts.fault_rate != parser.get_default("fault_rate") else []),
                   *(["--backend", opts.backend] if opts.backend != "memory" else [])]
        print("replay the first failing seed: "
              + schedule_command(first_failing, opts.workflows, *options))
    print(f"simulation: {opts.schedules} schedules, {violations} violations")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
