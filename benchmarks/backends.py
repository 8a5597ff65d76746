"""W1-W4 and environment start on the memory backend and on moto, side by side.

    python -m benchmarks.backends            # 5 runs of each (W2 on moto: 3)
    python -m benchmarks.backends --quick    # fewer runs
    python -m benchmarks.backends --json out.json

The same workloads as `benchmarks.run` (W1: one workflow of 100 sequential activities, ms
per step; W2: 200 workflows of 5 activities driven together, steps/s; W3: one workflow
gathering 100 activities, ms; W4: a 1 s durable sleep then one activity, ms), through the real
handlers and engine, on `WorkflowEnvironment(backend="memory")` and `backend="moto"`.
Environment start is `__enter__` of a fresh environment (template read, stack built, runtime
installed), after one warm-up environment of that backend. Medians, min and max.
Targets (issue #9, item 7): memory W1 <= 1.3 ms/step, W2 >= 500 steps/s, W3 <= 100 ms,
start <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .harness import env, timed
from .workloads import run_w1, run_w2, run_w3, run_w4

BACKENDS = ("memory", "moto")
TARGETS = {"w1_ms_per_step": 1.3, "w2_steps_per_s": 500.0, "w3_ms": 100.0, "start_ms": 50.0}


def env_start_ms(backend: str) -> float:
    """Milliseconds to enter a fresh environment (its exit is not counted)."""
    e = env(backend)
    t0 = time.perf_counter()
    e.__enter__()
    elapsed = (time.perf_counter() - t0) * 1000
    e.__exit__(None, None, None)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    runs = 2 if args.quick else 5
    res: dict[str, Any] = {}
    for backend in BACKENDS:
        env_start_ms(backend)  # warm-up: imports, template parse caches
        res[backend] = {
            "start_ms": timed(lambda b=backend: env_start_ms(b), runs * 2,  # type: ignore[misc]
                              f"{backend} start", args.verbose),
            "w1": timed(lambda b=backend: run_w1(backend=b), runs,  # type: ignore[misc]
                        f"{backend} W1", args.verbose),
            "w2": timed(lambda b=backend: run_w2(backend=b),  # type: ignore[misc]
                        runs if backend == "memory" else max(1, runs - 2),
                        f"{backend} W2", args.verbose),
            "w3": timed(lambda b=backend: run_w3(backend=b), runs,  # type: ignore[misc]
                        f"{backend} W3", args.verbose),
            "w4": timed(lambda b=backend: run_w4(backend=b), runs,  # type: ignore[misc]
                        f"{backend} W4", args.verbose)}
        print(f"{backend} done", file=sys.stderr, flush=True)
    print(f"{'':24}{'memory':>26}{'moto':>26}   target (memory)")
    rows = [("W1 ms/step", lambda r: r["w1"]["ms_per_step"], "w1_ms_per_step", "<="),
            ("W1 CPU ms/step", lambda r: r["w1"]["cpu_ms_per_step"], None, ""),
            ("W2 steps/s", lambda r: r["w2"]["steps_per_s"], "w2_steps_per_s", ">="),
            ("W2 CPU steps/s", lambda r: r["w2"]["cpu_steps_per_s"], None, ""),
            ("W3 ms", lambda r: r["w3"]["wall_ms"], "w3_ms", "<="),
            ("W3 CPU ms", lambda r: r["w3"]["cpu_ms"], None, ""),
            ("W4 ms (virtual sleep)", lambda r: r["w4"]["wall_ms"], None, ""),
            ("environment start ms", lambda r: r["start_ms"], "start_ms", "<=")]
    for label, pick, target, sign in rows:
        cells = []
        for backend in BACKENDS:
            s = pick(res[backend])
            cells.append(f"{s['median']:8.2f} ({s['min']:.2f}-{s['max']:.2f})")
        goal = f"   {sign} {TARGETS[target]:g}" if target else ""
        print(f"{label:24}{cells[0]:>26}{cells[1]:>26}{goal}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
