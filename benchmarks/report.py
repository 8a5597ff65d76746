"""The printed report: the figures table, the request tables and the profile."""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from typing import Any

from .aws_requests import CATEGORIES
from .harness import REFERENCE, W1_STEPS, W2_STEPS, W2_WORKFLOWS, W3_FANOUT, W4_SLEEP
from .imports import print_imports


def fmt_stat(s: dict[str, Any], unit: str, digits: int = 1) -> str:
    return (f"{s['median']:>9.{digits}f} {unit:<9} (min {s['min']:.{digits}f}, "
            f"max {s['max']:.{digits}f}, n={s['runs']})")


def print_report(res: dict[str, Any]) -> None:
    out = print
    out(f"\nostinato benchmarks  (python {sys.version.split()[0]}, {os.cpu_count()} cpu, "
        f"{'quick' if res['quick'] else 'full'} run, {res['wall_s']:.0f} s)")
    out("In-process test environment: moto DynamoDB/SQS/Scheduler, virtual clock, handlers "
        "invoked by pollers. MEDIAN (min, max, runs).\n")
    def line(label: str, stat: dict[str, Any], unit: str, digits: int,
             cpu: dict[str, Any] | None = None) -> None:
        extra = f"  cpu {cpu['median']:.{digits}f}" if cpu else ""
        out(f"{label:<48}" + fmt_stat(stat, unit, digits) + extra)

    if "w1" in res:
        line(f"W1  {W1_STEPS} sequential activities, 1 workflow", res["w1"]["ms_per_step"],
             "ms/step", 2, res["w1"]["cpu_ms_per_step"])
        if "note" in res["w1"]:
            out(f"      ({res['w1']['note']})")
    if "w1_core" in res:
        line("W1' same, engine alone (in-memory store/queues)", res["w1_core"]["ms_per_step"],
             "ms/step", 2, res["w1_core"]["cpu_ms_per_step"])
    if "w2" in res:
        w2 = res["w2"]
        line(f"W2  {W2_WORKFLOWS} workflows x {W2_STEPS} activities, together",
             w2["steps_per_s"], "steps/s", 1, w2["cpu_steps_per_s"])
        line("      drive only (after all were started)", w2["drive_steps_per_s"], "steps/s", 1)
        line("      start_workflow", w2["start_ms_per_workflow"], "ms/start", 2)
    if "w3" in res:
        line(f"W3  fan-out of {W3_FANOUT} activities (gather)", res["w3"]["wall_ms"], "ms", 0,
             res["w3"]["cpu_ms"])
    if "w4" in res:
        w4 = res["w4"]
        line(f"W4  ctx.sleep({W4_SLEEP:g} s) + 1 activity", w4["wall_ms"], "ms", 1, w4["cpu_ms"])
        out(f"      virtual time that passed: {w4['virtual_s']['median']:.3f} s (the sleep is "
            "skipped on the virtual clock; the wall time is engine work only)")
    if "replay" in res:
        rp = res["replay"]
        line(f"Replay of {rp['events']} events ({rp['batches']} batches)", rp["replay_ms"],
             "ms", 2)
        line("      loading that history from moto-DynamoDB", rp["moto_load_batches_ms"], "ms", 1)
        for long in rp.get("long", []):
            line(f"Replay of {long['events']:,} events ({long['batches']:,} batches)",
                 long["ms"], "ms", 0)
            line("      per event (linear: the same at every length)", long["ms_per_event"],
                 "ms/event", 4, long["cpu_ms_per_event"])
        out(f"      (history built by the real Engine over an in-memory store in "
            f"{rp['build_in_memory_s']:.1f} s; same shape as a moto run: "
            f"{'yes' if res.get('shape_check') else 'NO'})")
    if "imports" in res:
        print_imports(res["imports"], out)
    if "requests" in res:
        print_requests(res["requests"], f"W1 ({W1_STEPS} sequential activities), per activity",
                       unit="act")
    if "requests_fanout" in res:
        print_requests(res["requests_fanout"], f"W3 (fan-out of {W3_FANOUT}), per activity",
                       unit="act")
    if "requests_timer" in res:
        print_requests(res["requests_timer"], "W4 (1 timer + 1 activity), per workflow",
                       unit="wf")
    if "cold_reads" in res:
        out("\nHistory reads with a COLD decider cache (each decision reads the whole run; "
            "eventually consistent, compressed bodies; RCU ESTIMATED from item sizes):")
        for row in res["cold_reads"]:
            out(f"  {row['steps']:>5} steps: {row['history_rcu_per_step']:7.2f} RCU/step  "
                f"({row['queries_per_step']:.2f} Query/step)")
    if "sticky" in res:
        out("\nSticky execution: W1-style ms/step by history length, engine alone over the "
            "in-memory stand-ins (as W1'), live instances on vs off (off: every decision "
            "replays the whole history):")
        for row in res["sticky"]:
            for mode in ("on", "off"):
                line(f"  {row['steps']:>5} steps, sticky {mode}", row[mode]["ms_per_step"],
                     "ms/step", 3, row[mode]["cpu_ms_per_step"])
    out("\nReference figures (published elsewhere; not measured here):")
    for name, per_step, throughput in REFERENCE:
        out(f"  {name:<38} {per_step:>13}  {throughput}")
    if "profile" in res:
        print_profile(res["profile"])


def print_requests(req: dict[str, Any], title: str, unit: str = "step") -> None:
    print(f"\nAWS requests of {title} (counted at botocore; capacity ESTIMATED from "
          "item sizes):")
    print(f"  {'operation':<38}{'per ' + unit:>9}{'RCU/' + unit:>9}{'WCU/' + unit:>9}"
          f"{'ms/call':>9}")
    current = None
    for row in sorted(req["rows"], key=lambda r: (list(CATEGORIES).index(r["category"]),
                                                   r["origin"], r["operation"])):
        if row["category"] != current:
            current = row["category"]
            print(f"  -- {CATEGORIES[current]}")
        where = row["origin"].removeprefix("lambda:").removesuffix("Function")
        label = f"{where} {row['operation']}"
        rcu = f"{row['rcu_per_step']:.2f}" if row["rcu"] else ""
        wcu = f"{row['wcu_per_step']:.2f}" if row["wcu"] else ""
        print(f"    {label:<36}{row['per_step']:>9.2f}{rcu:>9}{wcu:>9}{row['ms_per_call']:>9.2f}")
    totals: dict[str, float] = defaultdict(float)
    seconds: dict[str, float] = defaultdict(float)
    for row in req["rows"]:
        totals[row["category"]] += row["per_step"]
        seconds[row["category"]] += row["seconds"]
    inv = ", ".join(f"{k} {v}" for k, v in req["lambda_invocations"].items())
    print(f"  Lambda invocations: {req['lambda_invocations_per_step']:.2f}/{unit} ({inv})")
    billed = totals["engine"] + totals["esm"]
    print(f"  billed AWS requests per {unit}: {totals['engine']:.2f} engine + "
          f"{totals['esm']:.2f} ESM = {billed:.2f} (+ Lambda invocations); harness polling "
          f"{totals['harness']:.2f}/{unit} (not billed per step on AWS)")
    share = {k: v / req["wall_s"] for k, v in seconds.items()}
    print("  share of wall time inside AWS calls: " + ", ".join(
        f"{k} {v:.0%}" for k, v in sorted(share.items(), key=lambda kv: -kv[1])))


def print_profile(prof: dict[str, Any]) -> None:
    print(f"\ncProfile of W1 (one run, {prof['total_s']:.1f} s under the profiler):")
    for layer in prof["layers"]:
        print(f"  {layer['layer']:<58}{layer['seconds']:>7.2f} s {layer['share']:>5.0%}")
    for title, key in (("top cumulative", "top_cumulative"), ("top self time", "top_self")):
        print(f"  {title}:  ncalls  tottime  cumtime  function")
        for e in prof[key]:
            print(f"    {e['ncalls']:>10} {e['tottime']:>8.2f} {e['cumtime']:>8.2f}  "
                  f"{e['function']}")
