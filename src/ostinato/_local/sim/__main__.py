"""`python -m ostinato._local.sim [--schedules N] [--seed S] [--workflows W] [--fault-rate R]`.

Runs N seeded schedules (seeds S, S+1, ...), each a random workload under seeded faults,
checks the invariants after each, prints the command replaying the first failing seed, and
ends with `simulation: N schedules, V violations`. Exit status 1 when any invariant broke.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workflows", type=int, default=4, help="workflows per schedule")
    parser.add_argument("--fault-rate", type=float, default=0.04,
                        help="share of AWS calls failed, half before and half after they act")
    parser.add_argument("--backend", default=None, help="the WorkflowEnvironment backend")
    opts = parser.parse_args(argv)

    from ...testing import WorkflowEnvironment
    from ..faults import FaultInjector
    from .driver import play, schedule_command
    from .workload import app

    kwargs = {} if opts.backend is None else {"backend": opts.backend}
    violations = runs = actions = 0
    faults: Counter[str] = Counter()
    first_failing: int | None = None
    began = time.perf_counter()
    with WorkflowEnvironment(app, **kwargs) as env:
        for seed in range(opts.seed, opts.seed + opts.schedules):
            injector = FaultInjector.seeded(seed, opts.fault_rate) if opts.fault_rate else None
            outcome = play(env, seed, opts.workflows, injector)
            runs += outcome.runs
            actions += outcome.actions
            if injector is not None:
                faults.update(f"{call.operation} {when}" for call, when in injector.injected)
            if outcome.violations:
                violations += len(outcome.violations)
                if first_failing is None:
                    first_failing = seed
                print(f"seed {seed}: {len(outcome.violations)} violation(s)")
                for line in outcome.violations[:10]:
                    print(f"  {line}")
    took = time.perf_counter() - began
    print(f"faults injected: {sum(faults.values())} "
          f"({', '.join(f'{k} {n}' for k, n in faults.most_common(8))})")
    print(f"{opts.schedules} schedules in {took:.1f} s: {runs} workflows checked, "
          f"{actions} outside actions")
    if first_failing is not None:
        print("replay the first failing seed: "
              + schedule_command(first_failing, opts.workflows))
    print(f"simulation: {opts.schedules} schedules, {violations} violations")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
