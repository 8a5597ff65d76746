"""ostinato benchmarks: the real engine in the in-process test environment (moto + virtual clock).

    .venv/bin/python benchmarks/run.py            # full run (~3-5 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # fewer repetitions (< 1 minute)
    .venv/bin/python benchmarks/run.py --json out.json   # also write JSON ("--json" alone: stdout)
    .venv/bin/python benchmarks/run.py --profile  # also cProfile W1 once and print where time goes
    .venv/bin/python benchmarks/run.py --only w1,requests   # a subset (see BENCHMARKS below)

Every figure is the MEDIAN of several fresh runs, with min and max. What each one means is in
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import gc
import json
import math
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "src", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from benchmarks import apps  # noqa: E402

from ostinato import _history as h  # noqa: E402
from ostinato._aws.transport import Transport  # noqa: E402
from ostinato._core.replay import replay_history  # noqa: E402
from ostinato.testing import WorkflowEnvironment  # noqa: E402

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


# ================================================================================ helpers
def summarize(samples: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "runs": len(samples), "samples": samples}


def env() -> WorkflowEnvironment:
    return WorkflowEnvironment(apps.app, template=TEMPLATE)


@contextlib.contextmanager
def warm_env() -> Iterator[WorkflowEnvironment]:
    with env() as e:
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


# ================================================================================ workloads
class Stopwatch:
    """Wall time (perf_counter) and this process's CPU time (process_time) since start.

    CPU time is reported next to wall time because the machines are shared: on a loaded
    machine wall time inflates while CPU time (everything here runs in this process) much less.
    """

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall0, time.process_time() - self.cpu0


def run_w1(steps: int = W1_STEPS) -> dict[str, float]:
    """W1: one workflow of `steps` sequential activities; ms per step (start to result)."""
    with warm_env() as e:
        watch = Stopwatch()
        result = e.client.start_workflow(apps.sequential, steps, id="w1").result()
        wall, cpu = watch.read()
        check_clean(e)
    assert result == steps * (steps - 1) // 2, result
    return {"ms_per_step": wall * 1000 / steps, "cpu_ms_per_step": cpu * 1000 / steps}


def run_w2() -> dict[str, float]:
    """W2: start W2_WORKFLOWS workflows of W2_STEPS activities, then drive them all together."""
    with warm_env() as e:
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


def run_w3() -> dict[str, float]:
    """W3: one workflow gathering W3_FANOUT activities; wall ms start to result."""
    with warm_env() as e:
        watch = Stopwatch()
        result = e.client.start_workflow(apps.fan_out, W3_FANOUT, id="w3").result()
        wall, cpu = watch.read()
        check_clean(e)
    assert result == W3_FANOUT * (W3_FANOUT - 1) // 2
    return {"wall_ms": wall * 1000, "cpu_ms": cpu * 1000}


def run_w4() -> dict[str, float]:
    """W4: ctx.sleep(1 s) then one activity; wall ms, and the virtual seconds that passed."""
    with warm_env() as e:
        v0 = e.clock()
        watch = Stopwatch()
        result = e.client.start_workflow(apps.sleep_then_activity, W4_SLEEP, id="w4").result()
        wall, cpu = watch.read()
        virtual = e.clock() - v0
        check_clean(e)
    assert result == "woke"
    return {"wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "virtual_s": virtual}


def run_w1_core() -> dict[str, float]:
    """W1': W1's workflow decided by the real Engine over in-memory stand-ins (below)."""
    watch = Stopwatch()
    run_in_memory(W1_STEPS)
    wall, cpu = watch.read()
    return {"ms_per_step": wall * 1000 / W1_STEPS, "cpu_ms_per_step": cpu * 1000 / W1_STEPS}


# ====================================================== the engine alone (in-memory store/queues)
class MemStore:
    """Just enough of `ostinato._aws.store.Store` for the engine, in memory.

    Batches are kept as JSON text (like the DynamoDB items) so encoding/decoding still costs.
    """

    def __init__(self, decode: bool = True) -> None:
        self.heads: dict[str, Any] = {}
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        #: decode=False hands back the appended objects (faster; for building histories)
        self.decode = decode
        self.objects: dict[str, list[h.Batch]] = {}

    def get_head(self, wid: str) -> Any:
        return self.heads.get(wid)

    def load_batches(self, rid: str, after: int = 0) -> list[h.Batch]:
        if not self.decode:
            return list(self.objects.get(rid, []))[after:]
        return [h.Batch(n, first, t, decided, [tuple(ev) for ev in json.loads(events)],
                        json.loads(outbox), list(consumed), json.loads(state))
                for n, first, t, decided, events, outbox, consumed, state
                in self.rows.get(rid, [])[after:]]

    def append(self, rid: str, batch: h.Batch) -> None:
        from ostinato._aws.store import AppendConflict

        rows = self.rows.setdefault(rid, [])
        if len(rows) >= batch.number:
            raise AppendConflict(f"batch {batch.number} exists")
        dumps = json.dumps
        rows.append((batch.number, batch.first_event_id, batch.time, batch.decided,
                     dumps(batch.events), dumps(batch.outbox), list(batch.consumed),
                     dumps(batch.state)))
        self.objects.setdefault(rid, []).append(batch)

    def project(self, wid: str, rid: str, number: int, state: dict[str, Any],
                task_failure: str | None = None) -> bool:
        head = self.heads[wid]
        head.status, head.batch = state["status"], number
        return True

    def load_heartbeat(self, rid: str, seq: int) -> Any:
        return None

    def save_heartbeat(self, *_: Any) -> None:
        pass


class MemTransport(Transport):
    """`ostinato._aws.transport.Transport` over in-memory FIFO lists; due deliveries go at once.

    Only the primitives are replaced: outbox dispatch is the real one.
    """

    def __init__(self) -> None:  # no AWS clients
        self.workflow: deque[dict[str, Any]] = deque()
        self.activity: deque[dict[str, Any]] = deque()

    def send_workflow_task(self, msg: dict[str, Any]) -> None:
        self.workflow.append(json.loads(json.dumps(msg)))

    def activity_queue_url(self, task_queue: str) -> str:
        return f"memory://{task_queue}"

    def send_activity_task(self, task_queue: str, task: dict[str, Any], delay: int = 0) -> None:
        self.activity.append(json.loads(json.dumps(task)))

    def deliver_at(self, due: float, envelope: dict[str, Any], key: str) -> None:
        self.forward(envelope)

    def cancel_at(self, key: str) -> None:
        pass


def run_in_memory(steps: int, run_id: str = "r1", decode: bool = True
                  ) -> tuple[float, list[h.Batch]]:
    """The real `Engine` deciding `sequential(steps)` over MemStore/MemTransport.

    No moto, botocore, pynamodb, SQS event shaping or Powertools: what is left is replay,
    command handling, JSON and the engine's own bookkeeping. Returns (seconds, batches).
    """
    from ostinato._aws.store import Head
    from ostinato._engine.decider import Engine

    now = 1_700_000_000.0
    store, transport = MemStore(decode), MemTransport()
    engine = Engine(apps.app, store, transport, clock=lambda: now)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    store.heads["mem"] = Head("mem", run_id, "sequential", h.RUNNING, now, [steps])
    transport.send_workflow_task({"k": "start", "wid": "mem", "rid": run_id, "mk": f"s:{run_id}"})
    while transport.workflow or transport.activity:
        while transport.workflow:
            engine.handle_workflow_messages([transport.workflow.popleft()], sent_at=now)
        while transport.activity:
            engine.handle_activity_task(transport.activity.popleft(), 1)
    elapsed = time.perf_counter() - t0
    store.decode = True  # what a reader of the stored items gets
    batches = store.load_batches(run_id)
    if batches[-1].state.get("status") != "COMPLETED":
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


# ================================================================================ import time
def handler_modules() -> list[str]:
    wanted = ["workflow_task", "activity_task", "timer", "api"]
    present = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
    ordered = [m for m in wanted if m in present] + [m for m in present if m not in wanted]
    return [f"functions.{m}.app" for m in ordered]


def _subprocess_env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path.rstrip(os.pathsep)}


def import_time_ms(module: str) -> dict[str, float]:
    """Wall and CPU ms of `import module` in a fresh interpreter (interpreter start excluded)."""
    code = ("import time; w, c = time.perf_counter(), time.process_time(); import " + module +
            "; print(time.perf_counter() - w, time.process_time() - c)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_subprocess_env(),
                         capture_output=True, text=True, check=True)
    wall, cpu = (float(x) * 1000 for x in out.stdout.split())
    return {"wall_ms": wall, "cpu_ms": cpu}


def import_top(module: str, top: int = 8) -> list[tuple[str, float]]:
    """Import time by top-level package (sum of `python -X importtime` self times), one run."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import " + module],
                         cwd=ROOT, env=_subprocess_env(), capture_output=True, text=True,
                         check=True)
    totals: dict[str, float] = defaultdict(float)
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        self_us = int(parts[0].removeprefix("import time:").strip())
        totals[parts[2].strip().split(".")[0]] += self_us / 1000
    return sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def run_imports(runs: int, verbose: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for module in handler_modules():
        result[module] = timed(functools.partial(import_time_ms, module), runs,
                               f"import {module}", verbose)
    return result


# ============================================================================ request counting
_origin: list[str] = ["driver"]


@contextlib.contextmanager
def origin(name: str) -> Iterator[None]:
    _origin.append(name)
    try:
        yield
    finally:
        _origin.pop()


def tagged(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with origin(name):
            return fn(*args, **kwargs)
    return wrapper


def _av_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB bills for one AttributeValue (per the documented sizing rules)."""
    (kind, x), = value.items()
    if kind == "S":
        return len(x.encode())
    if kind == "N":
        digits = len(x.lstrip("-").replace(".", "").strip("0")) or 1
        return (digits + 1) // 2 + 1
    if kind == "B":
        return len(x)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_av_size({kind[0]: v}) for v in x)
    if kind == "L":
        return 3 + sum(_av_size(v) + 1 for v in x)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _av_size(v) + 1 for k, v in x.items())
    return 0


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(k.encode()) + _av_size(v) for k, v in (item or {}).items())


#: GSIs of the table (template.yaml): an item lands in one when it has both key attributes.
GSI_KEYS = [("status", "start_time"), ("workflow_type", "start_time")]


def estimate_capacity(op: str, params: dict[str, Any], response: dict[str, Any] | None
                      ) -> tuple[float, float]:
    """(RCU, WCU) estimated from request/response item sizes (on-demand: RRU/WRU).

    Reads: 1 unit per 4 KB strongly consistent, 0.5 eventually (a Query sums its items first).
    Writes: 1 unit per 1 KB of the item, plus the same again per GSI the item is in
    (projection ALL). UpdateItem uses the item after the update (ReturnValues=ALL_NEW, which
    pynamodb asks for); a failed conditional write still costs the write.
    """
    response = response or {}
    factor = 1.0 if params.get("ConsistentRead") else 0.5
    if op == "GetItem":
        return factor * max(1, math.ceil(item_size(response.get("Item")) / 4096)), 0.0
    if op in ("Query", "Scan"):
        total = sum(item_size(i) for i in response.get("Items", []))
        return factor * max(1, math.ceil(total / 4096)), 0.0

    def write(item: dict[str, Any] | None) -> float:
        units = max(1, math.ceil(item_size(item) / 1024))
        in_gsis = sum(1 for keys in GSI_KEYS if item and all(k in item for k in keys))
        return float(units * (1 + in_gsis))

    if op == "PutItem":
        return 0.0, write(params.get("Item"))
    if op == "UpdateItem":
        return 0.0, write(response.get("Attributes") or params.get("Key"))
    if op == "DeleteItem":
        return 0.0, 1.0
    if op == "TransactWriteItems":
        return 0.0, sum(2 * write(x.get("Put", {}).get("Item")) for x in params["TransactItems"])
    return 0.0, 0.0


class ApiRecorder:
    """Counts every botocore API call (boto3 and pynamodb alike) by origin and operation."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], dict[str, float]] = defaultdict(
            lambda: {"calls": 0, "seconds": 0.0, "rcu": 0.0, "wcu": 0.0, "messages": 0})
        self._saved: Any = None

    def __enter__(self) -> ApiRecorder:
        from botocore.client import BaseClient

        original = self._saved = BaseClient._make_api_call
        recorder = self

        def recording(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            t0 = time.perf_counter()
            response = None
            try:
                response = original(client, operation_name, api_params)
                return response
            finally:
                recorder.record(client.meta.service_model.service_name, operation_name,
                                api_params, response, time.perf_counter() - t0)

        BaseClient._make_api_call = recording  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        from botocore.client import BaseClient

        BaseClient._make_api_call = self._saved  # type: ignore[method-assign]

    def record(self, service: str, op: str, params: dict[str, Any],
               response: dict[str, Any] | None, seconds: float) -> None:
        where = _origin[-1]
        name = f"{service}.{op}"
        messages = 0
        if op == "ReceiveMessage":
            messages = len((response or {}).get("Messages", []))
            if not messages:
                name += " (empty)"
        elif op in ("DeleteMessageBatch", "SendMessageBatch"):
            messages = len(params.get("Entries", []))
        elif op == "SendMessage":
            messages = 1
        row = self.rows[(category(where, name), where, name)]
        row["calls"] += 1
        row["seconds"] += seconds
        row["messages"] += messages
        if service == "dynamodb":
            rcu, wcu = estimate_capacity(op, params, response)
            row["rcu"] += rcu
            row["wcu"] += wcu


CATEGORIES = {
    "engine": "engine: inside Lambda handlers (billed per step on AWS)",
    "esm": "event-source mapping: receive/delete of delivered messages (billed SQS requests)",
    "client": "client: start_workflow (per workflow, not per step)",
    "harness": "emulator/test harness polling (empty receives, scheduler scan, result checks)",
}


def category(where: str, name: str) -> str:
    if where.startswith("lambda:"):
        return "engine"
    if where == "esm" and "(empty)" not in name:
        return "esm"
    if where == "client":
        return "client"
    return "harness"


def instrument(e: WorkflowEnvironment) -> None:
    for poller in e.pollers:
        poller.handler = tagged(f"lambda:{poller.mapping.function}", poller.handler)
        poller.poll = tagged("esm", poller.poll)  # type: ignore[method-assign]
    e.schedules.fire_due = tagged("harness", e.schedules.fire_due)  # type: ignore[method-assign]
    e.schedules.next_due = tagged("harness", e.schedules.next_due)  # type: ignore[method-assign]
    e.client.start_workflow = tagged("client", e.client.start_workflow)  # type: ignore[method-assign]


def count_requests(workflow: Any, arg: Any, steps: int) -> dict[str, Any]:
    """Run one workflow with every API call recorded; figures per activity step."""
    with warm_env() as e:
        instrument(e)
        with ApiRecorder() as rec:
            watch = Stopwatch()
            e.client.start_workflow(workflow, arg, id="counted").result()
            wall, cpu = watch.read()
        check_clean(e)
        invocations = {p.mapping.function: p.invocations for p in e.pollers}
    rows = []
    for (cat, where, name), row in sorted(rec.rows.items()):
        rows.append({"category": cat, "origin": where, "operation": name, **row,
                     "per_step": row["calls"] / steps, "rcu_per_step": row["rcu"] / steps,
                     "wcu_per_step": row["wcu"] / steps,
                     "ms_per_call": row["seconds"] * 1000 / row["calls"]})
    return {"steps": steps, "wall_s": wall, "cpu_s": cpu, "rows": rows,
            "lambda_invocations": invocations,
            "lambda_invocations_per_step": sum(invocations.values()) / steps}


# ================================================================================ profile
def _loc(key: tuple[str, int, str]) -> str:
    filename, line, func = key
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({func})" if line else func


def _cum(stats: pstats.Stats, path_suffix: str, func: str | None = None) -> float:
    """Largest cumulative time of a function matching (outermost call of a call tree)."""
    best = 0.0
    for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if filename.replace(os.sep, "/").endswith(path_suffix) and (func is None or name == func):
            best = max(best, ct)
    return best


def profile_w1(top: int = 15) -> dict[str, Any]:
    with warm_env() as e:
        prof = cProfile.Profile()
        prof.enable()
        e.client.start_workflow(apps.sequential, W1_STEPS, id="profiled").result()
        prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    engine_calls = sum(_cum(stats, "ostinato/_engine.py", f) for f in
                       ("handle_workflow_messages", "handle_activity_task", "handle_due"))
    handler_calls = sum(_cum(stats, "ostinato/lambda_handlers.py", f) for f in
                        ("workflow_task", "activity_task", "timer"))
    api = _cum(stats, "botocore/client.py", "_make_api_call")
    moto = _cum(stats, "moto/core/botocore_stubber.py", "__call__")
    layers = [
        ("all AWS API calls (botocore client + moto)", api),
        ("  of which moto request handling", moto),
        ("    of which moto response serialization", _cum(stats, "moto/core/serialize.py")),
        ("  of which botocore outside moto (serialize, sign, parse)", api - moto),
        ("DynamoDB calls via pynamodb (incl. moto)", _cum(stats, "pynamodb/connection/base.py",
                                                          "dispatch")),
        ("  Store.load_batches (history read each decision)",
         _cum(stats, "ostinato/_store.py", "load_batches")),
        ("replay + decide (pure core)", _cum(stats, "ostinato/_replay.py", "replay_history")
         + _cum(stats, "ostinato/_replay.py", "decide")),
        ("Powertools handler wrapping (handlers minus engine)", handler_calls - engine_calls),
        ("json.loads + json.dumps (all callers)", _cum(stats, "json/__init__.py", "loads")
         + _cum(stats, "json/__init__.py", "dumps")),
    ]
    entries = sorted(stats.stats.items(), key=lambda kv: -kv[1][3])  # type: ignore[attr-defined]
    cumulative = [{"function": _loc(k), "ncalls": v[1], "tottime": v[2], "cumtime": v[3]}
                  for k, v in entries[:top]]
    by_self = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])  # type: ignore[attr-defined]
    self_time = [{"function": _loc(k), "ncalls": v[1], "tottime": v[2], "cumtime": v[3]}
                 for k, v in by_self[:top]]
    return {"total_s": total, "layers": [{"layer": n, "seconds": s, "share": s / total}
                                         for n, s in layers],
            "top_cumulative": cumulative, "top_self": self_time}


# ================================================================================ output
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
        out(f"      (history built by the real Engine over an in-memory store in "
            f"{rp['build_in_memory_s']:.1f} s; same shape as a moto run: "
            f"{'yes' if res.get('shape_check') else 'NO'})")
    if "imports" in res:
        out("\nHandler import time, fresh interpreter each run:")
        for module, s in res["imports"].items():
            line(f"  {module}", s["wall_ms"], "ms", 0, s["cpu_ms"])
        if res.get("import_top"):
            top = ", ".join(f"{n} {ms:.0f}" for n, ms in res["import_top"])
            out(f"  self time by package importing {handler_modules()[0]} "
                f"(ms, one -X importtime run): {top}")
    if "requests" in res:
        print_requests(res["requests"], f"W1 ({W1_STEPS} sequential activities), per activity",
                       unit="act")
    if "requests_fanout" in res:
        print_requests(res["requests_fanout"], f"W3 (fan-out of {W3_FANOUT}), per activity",
                       unit="act")
    if "requests_timer" in res:
        print_requests(res["requests_timer"], "W4 (1 timer + 1 activity), per workflow",
                       unit="wf")
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


# ================================================================================ main
BENCHMARKS = ("w1", "w1core", "w2", "w3", "w4", "replay", "imports", "requests")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 1 minute)")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="also write the results as JSON to PATH (default: stdout)")
    parser.add_argument("--profile", action="store_true", help="cProfile W1 once and print it")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
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
            "imports": 2 if q else 5}
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
        res["import_top"] = import_top(handler_modules()[0])
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
