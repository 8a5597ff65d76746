"""ostinato benchmarks: the real engine in the in-process test environment (moto + virtual clock).

    python -m benchmarks.run            # full run (~3-5 minutes on 2 cores)
    python -m benchmarks.run --quick    # fewer repetitions (< 1 minute)
    python -m benchmarks.run --json out.json   # also write JSON ("--json" alone: stdout)
    python -m benchmarks.run --profile  # also cProfile W1 once and print where time goes
    python -m benchmarks.run --only w1,requests   # a subset (see BENCHMARKS below)
    python -m benchmarks.run --only cold   # history RCU/step, cold cache, 100 and 1,000 steps
    python -m benchmarks.run --only sticky # per-step cost at 100-2,000 steps, sticky on/off

Run from the repository root with the project's virtualenv (`.venv/bin/python -m ...`).
Every figure is the MEDIAN of several fresh runs, with min and max. What each one means is in
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import apps
from .aws_requests import count_requests, history_reads
from .harness import REFERENCE, W1_STEPS, W3_FANOUT, W4_SLEEP, summarize, timed
from .imports import run_imports
from .profiling import profile_w1
from .replay import run_replay
from .report import print_report
from .sticky import run_sticky
from .workloads import (
    check_in_memory_matches_moto,
    run_in_memory,
    run_w1,
    run_w1_core,
    run_w2,
    run_w3,
    run_w4,
)

BENCHMARKS = ("w1", "w1core", "w2", "w3", "w4", "replay", "imports", "requests", "cold",
              "sticky")
#: `cold` replays a 1,000-step run with a cache that keeps nothing (O(n^2) reads on moto,
#: ~15 minutes here), and `sticky` times 2,000-step runs with every decision replaying in full
#: (a few minutes): only when asked for with --only.
DEFAULT = tuple(b for b in BENCHMARKS if b not in ("cold", "sticky"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 1 minute)")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="also write the results as JSON to PATH (default: stdout)")
    parser.add_argument("--profile", action="store_true", help="cProfile W1 once and print it")
    parser.add_argument("--only", default=",".join(DEFAULT),
                        help=f"comma-separated subset of {','.join(BENCHMARKS)} "
                        "('none': only what --profile adds)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) - {"", "none"}
    unknown = only - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    q = args.quick
    runs = {"w1": 1 if q else 3, "w1core": 3 if q else 7, "w2": 1 if q else 3,
            "w3": 2 if q else 5, "w4": 3 if q else 7, "replay": 5 if q else 11,
            "imports": 3 if q else 7, "sticky": 1 if q else 5, "sticky_off": 1 if q else 3}
    v = args.verbose
    t_start = time.perf_counter()
    res: dict[str, Any] = {"quick": q, "python": sys.version.split()[0], "cpus": os.cpu_count(),
                           "runs": runs, "reference": REFERENCE}

    def stage(name: str) -> bool:
        if name in only:
            print(f"[{time.perf_counter() - t_start:6.1f} s] {name} ...", file=sys.stderr,
                  flush=True)
            return True
        return False

    # --quick: the one W1 sample is the request-counting run (same workload, recorder on)
    w1_from_counted = q and "w1" in only and "requests" in only
    if w1_from_counted:
        only.discard("w1")
    if stage("w1"):
        run_w1(10)  # warm-up: imports, handler modules, caches
        res["w1"] = timed(run_w1, runs["w1"], "W1", v)
    if stage("w1core"):
        run_in_memory(W1_STEPS)
        res["w1_core"] = timed(run_w1_core, runs["w1core"], "W1'", v)
    if stage("w2"):
        res["w2"] = timed(run_w2, runs["w2"], "W2", v)
    if stage("w3"):
        res["w3"] = timed(run_w3, runs["w3"], "W3", v)
    if stage("w4"):
        res["w4"] = timed(run_w4, runs["w4"], "W4", v)
    if stage("replay"):
        res["shape_check"] = check_in_memory_matches_moto()
        res["replay"] = run_replay(runs["replay"], v, load_runs=1 if q else 3)
    if stage("imports"):
        res["imports"] = run_imports(runs["imports"], v)
    if stage("requests"):
        run_w1(5)  # warm-up
        res["requests"] = count_requests(apps.sequential, W1_STEPS, W1_STEPS)
        res["requests_fanout"] = count_requests(apps.fan_out, W3_FANOUT, W3_FANOUT)
        res["requests_timer"] = count_requests(apps.sleep_then_activity, W4_SLEEP, 1)
        if w1_from_counted:
            counted = res["requests"]
            res["w1"] = {"ms_per_step": summarize([counted["wall_s"] * 1000 / W1_STEPS]),
                         "cpu_ms_per_step": summarize([counted["cpu_s"] * 1000 / W1_STEPS]),
                         "note": "quick run: taken from the request-counting run"}
    if stage("cold"):  # history RCU per step with a cold decider cache, at two lengths
        res["cold_reads"] = [history_reads(apps.sequential, n) for n in (100, 1000)]
    if stage("sticky"):
        res["sticky"] = run_sticky(runs["sticky"], v, off_runs=runs["sticky_off"])
    if args.profile:
        stage("profile") or print("[profile] ...", file=sys.stderr, flush=True)
        res["profile"] = profile_w1()
    res["wall_s"] = time.perf_counter() - t_start
    print_report(res)
    if args.json:
        text = json.dumps(res, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
            print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
