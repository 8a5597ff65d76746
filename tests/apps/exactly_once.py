"""Checking "each delivery starts one run": count runs in the table, crash the events function."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from ostinato._local.faults import Call, FaultInjector, exempt


def started_runs(env: Any) -> Counter:
    """Workflow id -> runs with a first history batch (`R#<run>` / `B#0000000001` items)."""
    import boto3

    store = env.runtime.store
    runs: Counter = Counter()
    with exempt():
        client = boto3.client("dynamodb", region_name="us-east-1")
        pages = client.get_paginator("scan").paginate(
            TableName=env.runtime.settings.table_name, ProjectionExpression="pk, sk",
            FilterExpression="begins_with(pk, :r) AND sk = :first",
            ExpressionAttributeValues={":r": {"S": "R#"}, ":first": {"S": "B#0000000001"}})
        for page in pages:
            for item in page["Items"]:
                first = store.load_batches(item["pk"]["S"][2:])[0]
                runs[first.events[0][1]["workflow_id"]] += 1
    return runs


class EventsFunctionFaults:
    """A FaultInjector failing the `index`-th AWS call of the `events` function, `when`
    ("before" it takes effect or "after"); `index=None` only counts its calls."""

    def __init__(self, index: int | None, when: str = "before") -> None:
        self.index = index
        self.when = when
        self.calls: list[Call] = []
        self._active = False
        self.injector = FaultInjector(self._plan)

    def attach(self, env: Any) -> EventsFunctionFaults:
        (poller,) = [p for p in env.pollers if p.mapping.function == "EventsFunction"]
        handler = poller.handler

        def invoke(event: Any, context: Any) -> Any:
            self._active = True
            try:
                return handler(event, context)
            finally:
                self._active = False

        poller.handler = invoke
        return self

    def _plan(self, call: Call) -> str | None:
        if not self._active:
            return None
        self.calls.append(call)
        return self.when if len(self.calls) - 1 == self.index else None

    @property
    def injected(self) -> int:
        return len(self.injector.injected)

    def __enter__(self) -> EventsFunctionFaults:
        self.injector.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.injector.__exit__(*exc)


Scenario = Callable[[EventsFunctionFaults], Counter]


def crash_at_every_call(scenario: Scenario, when: str, expected: Counter) -> int:
    """Run `scenario` once per AWS call of the events function, failing that call; each run
    must still start `expected`. Returns how many calls there were."""
    probe = EventsFunctionFaults(None)
    assert scenario(probe) == expected
    total = len(probe.calls)
    for index in range(total):
        faults = EventsFunctionFaults(index, when)
        assert scenario(faults) == expected, f"{when} call {index}: {faults.calls[index]}"
        assert faults.injected == 1, f"call {index} was not reached"
    return total
