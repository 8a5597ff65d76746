"""The sample trigger events in events/ drive the real handlers to real outcomes.

All samples belong to one run of the example app's `order` workflow ("order-1", run
`RUN_ID`), so they can be fed in story order: the API starts it, the FIFO batch wakes the
decider, an activity task runs, a retry wake-up arrives, and the Scheduler fires the 1-hour
sleep.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from examples import order
from functions.activity_task.app import handler as activity_handler
from functions.api.app import handler as api_handler
from functions.timer.app import handler as timer_handler
from functions.workflow_task.app import handler as workflow_handler

from ostinato._core import keys, wire
from ostinato._engine.ports import Head
from ostinato._local.emulator import LambdaContext

EVENTS = Path(__file__).resolve().parents[1] / "events"
RUN_ID = "a5505a0870ca4c5986c1e295497c9e4f"
T0 = 1795554608.0  # when the samples say the run started


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def body(event: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return json.loads(event["Records"][i]["body"])


def ctx(name: str) -> LambdaContext:
    return LambdaContext(name, aws_request_id="test")


def peek(env: Any, queue_url: str) -> list[dict[str, Any]]:
    """Messages receivable now, left in the queue (visibility timeout 0)."""
    got = env.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                  VisibilityTimeout=0)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def types(env: Any) -> list[str]:
    return [e.event_type for e in env.client.get_workflow_handle("order-1").history()]


@pytest.fixture
def env(make_env):
    return make_env(order.app, start_time=datetime.fromtimestamp(T0, UTC))


def start_run(env: Any) -> None:
    """What the API did before the FIFO sample was sent: write the run's head."""
    sample = body(load("sqs_workflow_task.json"))
    assert wire.decode_message(sample) == wire.Start("order-1", RUN_ID, keys.start(RUN_ID))
    assert wire.Start("order-1", RUN_ID, keys.start(RUN_ID)).encode() == sample  # one encoding
    env.runtime.store.create_head(Head("order-1", RUN_ID, "order", "RUNNING", T0,
                                       [["apple", "pear"]]))
    answer = workflow_handler(load("sqs_workflow_task.json"), ctx("WorkflowTaskFunction"))
    assert answer == {"batchItemFailures": []}


def test_api_sample_starts_the_order_workflow(env):
    answer = api_handler(load("api_start_workflow.json"), ctx("ApiFunction"))

    assert answer["statusCode"] == 201
    started = json.loads(answer["body"])
    assert started["workflow_id"] == "order-1"
    env.drain()  # the decider and the reserve activities run
    described = env.client.get_workflow_handle("order-1").describe()
    assert (described.run_id, described.status) == (started["run_id"], "RUNNING")
    assert described.custom_status == "awaiting approval"


def test_workflow_task_sample_starts_and_signals_the_run_in_one_decision(env):
    start_run(env)

    assert types(env) == ["WorkflowExecutionStarted", "WorkflowExecutionSignaled",
                          "ActivityTaskScheduled", "ActivityTaskScheduled"]
    tasks = peek(env, env.settings.activity_queue_urls["default"])
    assert sorted((t["seq"], t["activity_type"], t["args"]) for t in tasks) == [
        (1, "reserve", ["apple"]), (2, "reserve", ["pear"])]


def test_activity_sample_runs_reserve_and_reports_to_the_decider(env):
    start_run(env)
    task = body(load("sqs_activity_task.json"))
    scheduled = [t for t in peek(env, env.settings.activity_queue_urls["default"])
                 if t["seq"] == task["seq"]]
    assert scheduled and scheduled[0]["options"] == task["options"]  # the sample is real

    answer = activity_handler(load("sqs_activity_task.json"), ctx("ActivityTaskFunction"))

    assert answer == {"batchItemFailures": []}
    reports = [wire.decode_message(m) for m in peek(env, env.settings.workflow_queue_url)
               if m["k"] == wire.ActivityOutcome.KIND]
    assert reports == [wire.ActivityOutcome("order-1", RUN_ID, keys.activity_result(RUN_ID, 1),
                                            seq=1, attempt=1, result="reserved apple")]


def test_timer_queue_sample_waits_until_due_then_wakes_the_decider(env):
    start_run(env)
    key = body(load("sqs_timer_wakeup.json"))["key"]

    # given the wake-up arrives 2 s early: it is put back, not forwarded
    answer = timer_handler(load("sqs_timer_wakeup.json"), ctx("TimerFunction"))
    assert answer == {"batchItemFailures": []}
    env.drain()
    consumed = {k for b in env.runtime.store.load_batches(RUN_ID) for k in b.consumed}
    assert key not in consumed

    # when its time comes, it reaches the decider
    env.sleep(2.5)
    consumed = {k for b in env.runtime.store.load_batches(RUN_ID) for k in b.consumed}
    assert key in consumed


def test_scheduler_sample_fires_the_one_hour_sleep(env):
    start_run(env)
    env.drain()  # reserve x2, the signal already arrived, charge; then the 1-hour sleep
    fired = body(load("scheduler_timer_fired.json"))
    started = [e.attributes for e in env.client.get_workflow_handle("order-1").history()
               if e.event_type == "TimerStarted"]
    assert started == [{"seq": fired["msg"]["seq"], "duration": 3600.0,
                        "fire_at": fired["due"]}]
    # the Scheduler fires the schedule and deletes it (ActionAfterCompletion DELETE)
    env.scheduler.delete_schedule(Name=keys.timer_schedule(fired["key"]),
                                  GroupName=env.settings.schedule_group)
    env.clock.advance_to(fired["due"])

    answer = timer_handler(load("scheduler_timer_fired.json"), ctx("TimerFunction"))

    assert answer == {"batchItemFailures": []}
    env.drain()
    assert "TimerFired" in types(env)
    result = env.client.get_workflow_handle("order-1").result()
    assert result["shipment"] == "shipped 2 item(s)" and result["approved_by"] == "ann"
