"""How the SQS handlers treat a batch: a poison message fails alone (FIFO and standard)."""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from examples import order
from functions.activity_task.app import handler as activity_handler
from functions.events.app import handler as events_handler
from functions.timer.app import handler as timer_handler
from functions.workflow_task.app import handler as workflow_handler

from ostinato import lambda_handlers
from ostinato._core import keys, wire
from ostinato._local.emulator import LambdaContext, sqs_record
from tests.apps import mixed
from tests.test_events import T0, ctx, load, start_run

NOT_JSON = "{not json"
NOT_A_MESSAGE = json.dumps({"k": "no-such-kind", "wid": "x", "rid": "y", "mk": "z"})


@pytest.fixture
def order_env(make_env: Any) -> Any:
    """The example app, at the time the events/ samples were recorded (see test_events)."""
    return make_env(order.app, start_time=datetime.fromtimestamp(T0, UTC))


@pytest.fixture
def handler_log() -> Iterator[io.StringIO]:
    """What the handlers log at ERROR and above, as JSON lines."""
    buffer = io.StringIO()
    stream = logging.StreamHandler(buffer)
    stream.setFormatter(lambda_handlers.logger.registered_formatter)
    level = lambda_handlers.logger.log_level
    lambda_handlers.logger.addHandler(stream)
    lambda_handlers.logger.setLevel("ERROR")
    yield buffer
    lambda_handlers.logger.removeHandler(stream)
    lambda_handlers.logger.setLevel(level)


def logged(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def failures(answer: dict[str, Any]) -> set[str]:
    return {f["itemIdentifier"] for f in answer["batchItemFailures"]}


def poisoned(record: dict[str, Any], body: str, message_id: str,
             group: str | None = None) -> dict[str, Any]:
    """A copy of `record` carrying `body` instead (and another message id, group)."""
    bad = copy.deepcopy(record)
    bad["body"], bad["messageId"] = body, message_id
    if group is not None:
        bad["attributes"]["MessageGroupId"] = group
    return bad


def types(env: Any, wid: str) -> list[str]:
    return [e.event_type for e in env.client.get_workflow_handle(wid).history()]


# ------------------------------------------------------------------------------ FIFO decider
def test_a_poison_message_stops_only_its_own_workflow_group(make_env, handler_log):
    env = make_env(mixed.app)
    for wid in ("a", "b"):
        env.client.start_workflow("mixed", wid, id=wid)
    got = env.sqs.receive_message(QueueUrl=env.settings.workflow_queue_url,
                                  MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])
    arn = "arn:aws:sqs:us-east-1:123456789012:wt.fifo"
    starts = {json.loads(m["Body"])["wid"]: sqs_record(m, arn, "us-east-1")
              for m in got["Messages"]}
    run_a = env.client.get_workflow_handle("a").current_run_id()
    signal = wire.Signal("a", run_a, keys.request("signal", "s1"),
                         name="poke", args=["late"])
    later = poisoned(starts["a"], json.dumps(signal.encode()), "a-3-signal")
    event = {"Records": [
        starts["a"],
        poisoned(starts["a"], NOT_JSON, "a-2-poison"),       # group a stops here
        later,                                                # ... so this waits for it
        starts["b"],                                          # group b goes on
        poisoned(starts["b"], NOT_A_MESSAGE, "c-1-poison", group="c"),  # a third group
    ]}

    answer = workflow_handler(event, LambdaContext("WorkflowTaskFunction"))

    assert failures(answer) == {"a-2-poison", "a-3-signal", "c-1-poison"}
    # a's messages before the poison were decided, the one after it was not (FIFO order)
    assert types(env, "a")[0] == "WorkflowExecutionStarted"
    assert "WorkflowExecutionSignaled" not in types(env, "a")
    assert types(env, "b")[0] == "WorkflowExecutionStarted"  # decided in the same invocation
    poison_logs = {entry["message_id"]: entry for entry in logged(handler_log)
                   if entry["message"].startswith("poison message")}
    assert set(poison_logs) == {"a-2-poison", "c-1-poison"}
    assert poison_logs["a-2-poison"]["exception_name"] == "JSONDecodeError"
    assert poison_logs["c-1-poison"]["exception_name"] == "WireError"


# ------------------------------------------------------------------------------ standard queues
def test_a_poison_activity_task_fails_alone(order_env, handler_log):
    env = order_env
    start_run(env)
    event = load("sqs_activity_task.json")
    good = event["Records"][0]
    event["Records"] = [poisoned(good, NOT_JSON, "p-1"), good,
                        poisoned(good, json.dumps({"wid": 1}), "p-2")]

    answer = activity_handler(event, ctx("ActivityTaskFunction"))

    assert failures(answer) == {"p-1", "p-2"}
    reports = env.sqs.receive_message(QueueUrl=env.settings.workflow_queue_url,
                                      MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert any(json.loads(m["Body"])["k"] == wire.ActivityOutcome.KIND
               for m in reports["Messages"])  # the good task ran and reported
    assert {e["message_id"] for e in logged(handler_log)} == {"p-1", "p-2"}


def test_a_poison_timer_message_fails_alone(order_env, handler_log):
    env = order_env
    start_run(env)
    event = load("sqs_timer_wakeup.json")
    good = event["Records"][0]
    event["Records"] = [good, poisoned(good, json.dumps({"due": "soon"}), "p-3")]

    answer = timer_handler(event, ctx("TimerFunction"))

    assert failures(answer) == {"p-3"}
    assert [e["message_id"] for e in logged(handler_log)] == ["p-3"]


def test_a_poison_trigger_message_fails_alone(order_env, handler_log):
    event = load("sqs_trigger_event.json")
    good = event["Records"][0]
    event["Records"] = [poisoned(good, NOT_JSON, "p-4"), good]

    answer = events_handler(event, ctx("EventsFunction"))

    assert failures(answer) == {"p-4"}
    assert [e["message_id"] for e in logged(handler_log)] == ["p-4"]
