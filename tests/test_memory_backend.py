"""The memory backend of `WorkflowEnvironment`: the real handlers and engine, no botocore.

The behaviour suite runs on both backends (OSTINATO_TEST_BACKEND=memory|moto); these check
what only the memory backend promises: not one AWS SDK request on the way, whatever the
workflow does (activities, timers past SQS's 15-minute delay, schedules, events, retries).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.client import BaseClient

from ostinato._client import schedules
from ostinato.testing import WorkflowEnvironment
from tests.apps import core, scheduled, triggered

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def no_sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every botocore request fails the test (and is recorded)."""
    made: list[str] = []

    def refuse(client: Any, operation: str, params: dict[str, Any]) -> Any:
        made.append(operation)
        raise AssertionError(f"the memory backend made an AWS SDK call: {operation}")

    monkeypatch.setattr(BaseClient, "_make_api_call", refuse)
    yield made
    assert made == []


def test_workflows_timers_and_retries_run_without_the_sdk(no_sdk: list[str]) -> None:
    core.reset()
    with WorkflowEnvironment(core.app, start_time=T0, backend="memory") as env:
        assert env.client.start_workflow(core.sequential, 3, id="seq").result() == [0, 1, 2]
        retried = env.client.start_workflow(core.call_activity, "flaky", 3, id="flaky")
        assert retried.result() == {"ok": "ok on 3"}  # two failed attempts, back-off timers
        assert core.attempts_seen == [1, 2, 3]
        slept = env.client.start_workflow(core.sleeper, 3 * 3600, id="sleep")
        waited = slept.result()  # beyond SQS's 15 minutes: a Scheduler at() schedule each
        assert 3 * 3600 <= waited["first"] < 3 * 3600 + 2
        assert 6 * 3600 <= waited["slept"] < 6 * 3600 + 4
        assert env.now() >= T0 + timedelta(hours=6)
        assert env.schedules.fired == 2
        assert env.handler_errors == []
        assert {w.workflow_id for w in env.client.list_workflows()} == {"seq", "flaky", "sleep"}


def test_schedules_and_events_run_without_the_sdk(no_sdk: list[str]) -> None:
    with WorkflowEnvironment(scheduled.app, start_time=T0, backend="memory") as env:
        schedules.create_schedule(env.client, "hourly", scheduled.tick, "x", rate="1 hour")
        env.sleep(timedelta(hours=2, minutes=30))
        assert schedules.list_schedules(env.client)[0].fired == 3
    with WorkflowEnvironment(triggered.app, start_time=T0, backend="memory") as env:
        env.client.put_events([{"Source": "shop", "DetailType": "OrderPlaced", "Detail": {
            "id": "5", "items": ["tea"], "customer": "ann"}}])
        env.drain()
        assert env.client.get_workflow_handle("order-5").result() == {
            "order": "5", "receipts": ["reserved tea"]}


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown backend 'dynamo'"):
        WorkflowEnvironment(core.app, backend="dynamo")


def test_the_backend_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSTINATO_TEST_BACKEND", "moto")
    assert WorkflowEnvironment(core.app).backend == "moto"
    monkeypatch.setenv("OSTINATO_TEST_BACKEND", "memory")
    assert WorkflowEnvironment(core.app).backend == "memory"
    assert WorkflowEnvironment(core.app, backend="moto").backend == "moto"


def test_the_list_indexes_may_lag_the_heads_and_catch_up() -> None:
    """`index_lag` (the simulation draws it from its seed): while an index update is late,
    listing shows the head as it was (a new run not at all) and describe shows it as it is;
    once the lag clears, listing agrees."""
    late = {"on": True}
    with WorkflowEnvironment(core.app) as env:
        store = env.client.store
        store.index_lag = lambda: late["on"]
        handle = env.client.start_workflow(core.sequential, 2, id="lagging")
        assert [d.workflow_id for d in env.client.list_workflows()] == []  # not indexed yet
        late["on"] = False
        assert [(d.workflow_id, d.status) for d in env.client.list_workflows()] == [
            ("lagging", "RUNNING")]
        late["on"] = True
        assert handle.result() == [0, 1]
        assert handle.describe().status == "COMPLETED"
        assert [d.status for d in env.client.list_workflows()] == ["RUNNING"]  # still late
        assert [d.workflow_id for d in env.client.list_workflows(status="COMPLETED")] == []
        late["on"] = False
        assert [d.status for d in env.client.list_workflows()] == ["COMPLETED"]
        assert [d.workflow_id for d in env.client.list_workflows(status="COMPLETED")] == [
            "lagging"]
