"""What every benchmark shares: the workload sizes, fresh environments, and timing helpers."""

from __future__ import annotations

import contextlib
import gc
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ostinato.testing import WorkflowEnvironment

from . import apps

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"

#: Published figures of other engines' local/test runtimes, for comparison only (not measured here).
REFERENCE = [
    ("DBOS on SQLite", "2.31 ms/step", "227 steps/s"),
    ("AWS durable functions, local runner", "2.90 ms/step", "253 steps/s"),
    ("Temporal time-skipping test server", "4.61 ms/step", "-"),
]

W1_STEPS = 100
W2_WORKFLOWS, W2_STEPS = 200, 5
W3_FANOUT = 100
W4_SLEEP = 1.0
REPLAY_ACTIVITIES = 500


def summarize(samples: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "runs": len(samples), "samples": samples}


def env(backend: str = "moto") -> WorkflowEnvironment:
    """A fresh environment; the figures of `run.py` are moto's (the AWS API path, whose
    requests `aws_requests` counts), `backends.py` sets the memory backend beside it."""
    return WorkflowEnvironment(apps.app, template=TEMPLATE, backend=backend)


@contextlib.contextmanager
def warm_env(backend: str = "moto") -> Iterator[WorkflowEnvironment]:
    with env(backend) as e:
        yield warm(e)


def warm(e: WorkflowEnvironment) -> WorkflowEnvironment:
    """Let pynamodb create its botocore clients before the clock starts.

    pynamodb makes one botocore client per Model class (heads, batches, heartbeats) on that
    model's first call, ~50-150 ms each; every environment's table has a new name, hence new
    models. On Lambda that is a cold-start cost, not a per-step one, so it is kept out of the
    per-step figures (and out of the request counts).
    """
    store = e.runtime.store
    store.get_head("__warm-up__")
    store.load_batches("__warm-up__")
    store.load_heartbeat("__warm-up__", 0)
    return e


def check_clean(e: WorkflowEnvironment) -> None:
    if e.handler_errors:
        raise RuntimeError(f"a handler raised during the benchmark: {e.handler_errors[0]!r}")


def timed(fn: Callable[[], Any], runs: int, label: str, verbose: bool) -> dict[str, Any]:
    """Run `fn` `runs` times; summarize its float, or each key of its dict, over the runs."""
    samples = []
    for i in range(runs):
        gc.collect()
        samples.append(fn())
        if verbose:
            shown = samples[-1] if isinstance(samples[-1], float) else {
                k: round(v, 2) for k, v in samples[-1].items()}
            print(f"  {label} run {i + 1}/{runs}: {shown}", file=sys.stderr, flush=True)
    if isinstance(samples[0], dict):
        return {k: summarize([s[k] for s in samples]) for k in samples[0]}
    return summarize(samples)


class Stopwatch:
    """Wall time (perf_counter) and this process's CPU time (process_time) since start.

    CPU time is reported next to wall time because the machines are shared: on a loaded
    machine wall time inflates while CPU time (everything here runs in this process) much less.
    """

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall0, time.process_time() - self.cpu0
