"""How the SQS handlers treat a batch: a poison message fails alone (FIFO and standard), and
records an invocation has no time left for go back untouched, not counted as attempts."""

from __future__ import annotations

import copy
import io
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from examples import order
from functions.activity_task.app import handler as activity_handler
from functions.events.app import handler as events_handler
from functions.timer.app import handler as timer_handler
from functions.workflow_task.app import handler as workflow_handler

import ostinato
from ostinato import lambda_handlers
from ostinato._aws.budget import InvocationBudget
from ostinato._core import keys, wire
from ostinato._core.definitions import ActivityOptions
from ostinato._engine.activities import ActivityWorker
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


# ------------------------------------------------------------------------------ the time guard
@dataclass
class Countdown(LambdaContext):
    """A Lambda context whose remaining time the test moves (`left`, seconds)."""

    left: float = 300.0

    def get_remaining_time_in_millis(self) -> int:
        return int(self.left * 1000)


def received(env: Any, queue: str) -> list[dict[str, Any]]:
    """The queue's receivable messages as Lambda event records (left in flight)."""
    url, queue_arn = env.stack.refs[queue], env.stack.arns[queue]
    got = env.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                  MessageSystemAttributeNames=["All"])
    return [sqs_record(m, queue_arn, "us-east-1") for m in got.get("Messages", [])]


def test_budget_admits_the_first_record_then_what_fits_then_nothing():
    context = Countdown("f", left=60)
    budget = InvocationBudget(context)
    assert budget.admits(600)  # the first always starts: no invocation gets more time
    context.left = 40
    assert budget.admits(30)  # 30 + margin fits in 40
    context.left = 19
    assert not budget.admits(None)  # unbounded: a quarter of 60 s + margin > 19
    context.left = 59
    assert not budget.admits(1)  # once refused, the batch has stopped
    assert InvocationBudget(object()).remaining() == float("inf")


def test_activities_not_started_in_time_come_back_fresh_not_as_dead_workers(order_env):
    env = order_env
    start_run(env)  # schedules reserve(apple) and reserve(pear): 30 s start_to_close each
    records = received(env, "ActivityQueueDefault")
    assert len(records) == 2
    context = Countdown("ActivityTaskFunction", left=300)
    ran: list[int] = []
    engine = env.runtime.engine
    original = engine.handle_activity_task

    def slow(task: wire.ActivityTask, receives: int = 1, time_left: float | None = None) -> None:
        ran.append(task.seq)
        original(task, receives, time_left)
        context.left -= 280  # this attempt took 280 s: 20 s left, under 30 s + margin

    engine.handle_activity_task = slow

    answer = activity_handler({"Records": records}, context)

    assert answer == {"batchItemFailures": []}  # the untouched one was re-sent, not failed
    assert len(ran) == 1
    (copy_,) = received(env, "ActivityQueueDefault")  # the originals are in flight
    assert copy_["body"] == records[1]["body"]
    assert copy_["attributes"]["ApproximateReceiveCount"] == "1"

    # delivered again, it runs as its first attempt (a receive count of 2 would have been
    # read as a dead worker: a timed-out attempt 1 and a retry, without ever running)
    engine.handle_activity_task = original
    assert activity_handler({"Records": [copy_]}, ctx("ActivityTaskFunction")) == {
        "batchItemFailures": []}
    outcomes = [wire.decode_message(json.loads(m["Body"])) for m in env.sqs.receive_message(
        QueueUrl=env.settings.workflow_queue_url, MaxNumberOfMessages=10,
        VisibilityTimeout=0)["Messages"]]
    seq = json.loads(copy_["body"])["seq"]
    (outcome,) = [o for o in outcomes if isinstance(o, wire.ActivityOutcome) and o.seq == seq]
    assert (outcome.attempt, outcome.failure) == (1, None)
    assert outcome.result.startswith("reserved ")


def test_workflow_groups_not_started_in_time_are_released_at_once(make_env):
    env = make_env(mixed.app)
    for wid in ("a", "b"):
        env.client.start_workflow("mixed", wid, id=wid)
    records = received(env, "WorkflowTaskQueue")
    assert [json.loads(r["body"])["wid"] for r in records] == ["a", "b"]
    context = Countdown("WorkflowTaskFunction", left=60)
    engine = env.runtime.engine
    original = engine.handle_workflow_messages

    def slow(deliveries: list[wire.Delivery]) -> None:
        original(deliveries)
        context.left -= 45  # 15 s left: under a quarter of 60 s + margin

    engine.handle_workflow_messages = slow

    answer = workflow_handler({"Records": records}, context)

    assert failures(answer) == {records[1]["messageId"]}
    assert types(env, "a")[0] == "WorkflowExecutionStarted"
    assert env.runtime.store.load_batches(env.client.get_workflow_handle("b")
                                          .current_run_id()) == []
    # released: receivable again right away, not after the 360 s visibility timeout (moto
    # wants its clock to move past the moment of the change; SQS does not)
    env.clock.advance_to(env.clock() + 1)
    (again,) = received(env, "WorkflowTaskQueue")
    assert again["messageId"] == records[1]["messageId"]


def test_an_unbounded_activity_is_cut_short_before_the_invocation_ends():
    """No timeout of its own: the worker reports it timed out while the invocation still has
    time to say so (and retries it), rather than Lambda killing the whole batch."""
    sent: list[tuple[float, Any, str]] = []

    @ostinato.activity
    def forever() -> None:
        time.sleep(2)

    class Transport:
        def deliver_at(self, due: float, envelope: Any, key: str) -> None:
            sent.append((due, envelope, key))

    app = ostinato.App(workflows=[], activities=[forever])
    worker = ActivityWorker(app, store=None, transport=Transport(), clock=time.time)  # type: ignore[arg-type]
    task = wire.ActivityTask("w", "r", 1, "forever", [], ActivityOptions().to_dict(), 1,
                             time.time())

    began = time.monotonic()
    worker.handle(task, 1, time_left=0.2)

    assert time.monotonic() - began < 1.5
    ((_, envelope, key),) = sent
    assert envelope.msg == task.next_attempt() and key == keys.activity_retry("r", 1, 2)
