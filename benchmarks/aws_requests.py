"""AWS request counting (at botocore) and DynamoDB capacity estimates from item sizes."""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from ostinato.testing import WorkflowEnvironment

from .harness import Stopwatch, check_clean, warm_env

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


#: GSIs of the table (template.yaml): an item lands in one when it has both key attributes;
#: each projects the item without its arguments (INCLUDE).
GSI_KEYS = [("ls", "start_time"), ("lt", "start_time"), ("la", "start_time")]


def estimate_capacity(op: str, params: dict[str, Any], response: dict[str, Any] | None
                      ) -> tuple[float, float]:
    """(RCU, WCU) estimated from request/response item sizes (on-demand: RRU/WRU).

    Reads: 1 unit per 4 KB strongly consistent, 0.5 eventually (a Query sums its items first).
    Writes: 1 unit per 1 KB of the item, plus 1 unit per 1 KB of its index entry (the item
    without `args`) per GSI the item is in. UpdateItem uses the item after the update
    (ReturnValues=ALL_NEW, which pynamodb asks for); a failed conditional write still costs
    the write.
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
        listed = {k: v for k, v in (item or {}).items() if k != "args"}
        return float(units + in_gsis * max(1, math.ceil(item_size(listed) / 1024)))

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


def history_reads(workflow: Any, steps: int) -> dict[str, Any]:
    """RCU the decider spends reading history per step with a COLD cache (every decision
    reads the whole history, as a Lambda container new to the run does)."""
    from ostinato._engine.cache import HistoryCache

    with warm_env() as e:
        e.engine.decider.history = HistoryCache(max_runs=0)  # keeps nothing: always cold
        instrument(e)
        with ApiRecorder() as rec:
            e.client.start_workflow(workflow, steps, id="cold").result()
        check_clean(e)
    reads = [row for (cat, where, name), row in rec.rows.items()
             if where == "lambda:WorkflowTaskFunction" and name == "dynamodb.Query"]
    rcu = sum(row["rcu"] for row in reads)
    calls = sum(row["calls"] for row in reads)
    return {"steps": steps, "history_rcu_per_step": rcu / steps, "queries_per_step": calls / steps}
