"""Delivery through the AWS adapters on both backends: the stack built from template.yaml on
the in-memory AWS and on moto, then `SqsTransport`, `EventBridgeScheduler` and
`EventBridgeBus` driven the same way, with schedules fired by the memory scheduler and by the
moto path's `SchedulerEmulator`. Any difference in what arrives, or when, is a divergence.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ostinato._aws.eventbus import EventBridgeBus
from ostinato._aws.scheduler import EventBridgeScheduler
from ostinato._aws.settings import Settings
from ostinato._aws.transport import SqsTransport
from ostinato._core import keys, wire
from ostinato._local import eventbus as _eventbus
from ostinato._local import template as _template
from ostinato._local.memory.events import pattern_matches
from ostinato.testing import VirtualClock

T0 = 1_800_000_030.0  # 30 s past a minute


@dataclass
class Stack:
    name: str
    clock: VirtualClock
    stack: _template.Stack
    sqs: Any
    transport: SqsTransport
    scheduler: EventBridgeScheduler
    bus: EventBridgeBus
    fire_due: Callable[[float], int]
    next_due: Callable[[], float | None]

    def url(self, logical_id: str) -> str:
        return self.stack.refs[logical_id]

    def at(self, t: float) -> None:
        """Move the clock to `t`, firing every schedule due on the way."""
        while True:
            due = self.next_due()
            if due is None or due > t:
                break
            self.clock.advance_to(due)
            self.fire_due(due)
        self.clock.advance_to(t)
        self.fire_due(t)

    def take(self, logical_id: str) -> list[dict[str, Any]]:
        """Receive and delete everything receivable on the queue now."""
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.url(logical_id), MaxNumberOfMessages=10,
                                           MessageSystemAttributeNames=["All"])
            messages = got.get("Messages", [])
            if not messages:
                return out
            for m in messages:
                self.sqs.delete_message(QueueUrl=self.url(logical_id),
                                        ReceiptHandle=m["ReceiptHandle"])
            out += messages


def _build(name: str, clock: VirtualClock, session: Any, emulate: Any) -> Stack:
    template = _template.load_template(_template.default_template_path())
    stack = _template.create(template, session, stack_name="contract")
    _eventbus.create_rules(template, stack, session, "contract",
                           {"TriggerEventSources": ["shop"]})
    settings = Settings.from_mapping(stack.environment)
    sqs = session.client("sqs")
    scheduler = EventBridgeScheduler(settings, client=session.client("scheduler"))
    fire_due, next_due = emulate(stack, sqs, session.client("scheduler"))
    return Stack(name, clock, stack, sqs, SqsTransport(settings, scheduler, sqs=sqs, clock=clock),
                 scheduler, EventBridgeBus("us-east-1", client=session.client("events")),
                 fire_due, next_due)


@pytest.fixture(name="aws", params=["memory", "moto"])
def aws_fixture(request: pytest.FixtureRequest) -> Iterator[Stack]:
    clock = VirtualClock(T0)
    if request.param == "memory":
        from ostinato._local.memory import MemoryBackend

        backend = MemoryBackend(clock)
        yield _build("memory", clock, backend.session(), lambda *_: (
            backend.scheduler.fire_due, lambda: backend.next_due(clock())))
        return
    from moto import mock_aws

    from ostinato._local.emulator import SchedulerEmulator
    from ostinato._local.motoserver import SqsClock, next_sqs_due, session

    def emulate(stack: _template.Stack, sqs: Any, scheduler: Any) -> Any:
        emulator = SchedulerEmulator(scheduler, sqs, stack.schedule_groups,
                                     stack.queue_urls_by_arn, clock=clock)

        def next_due() -> float | None:
            times = [t for t in (next_sqs_due(clock()), emulator.next_due()) if t is not None]
            return min(times) if times else None

        return emulator.fire_due, next_due

    request.getfixturevalue("moto_locked")
    with mock_aws(), SqsClock(clock):
        yield _build("moto", clock, session(), emulate)


def bodies(messages: list[dict[str, Any]]) -> list[Any]:
    return [json.loads(m["Body"]) for m in messages]


# -- workflow tasks and activity tasks ---------------------------------------------------------
def test_a_workflow_task_sent_twice_is_delivered_once_in_its_group(aws: Stack):
    msg = wire.Start("wf-1", "r1", keys.start("r1"))
    aws.transport.send_workflow_task(msg)
    aws.transport.send_workflow_task(msg)  # a retried send
    aws.transport.send_workflow_task(wire.Start("wf-2", "r2", keys.start("r2")))
    got = aws.take("WorkflowTaskQueue")
    assert [wire.decode_message(b) for b in bodies(got)] == [
        msg, wire.Start("wf-2", "r2", keys.start("r2"))]
    assert [m["Attributes"]["MessageGroupId"] for m in got] == ["wf-1", "wf-2"]


def test_an_activity_task_waits_out_its_delay(aws: Stack):
    task = wire.ActivityTask("wf", "r1", 1, "act", [1], {"task_queue": "default"}, 1, T0)
    aws.transport.send_activity_task(task, delay=30)
    assert aws.take("ActivityQueueDefault") == []
    aws.at(T0 + 31)
    assert [wire.ActivityTask.decode(b) for b in bodies(aws.take("ActivityQueueDefault"))] == [
        task]
    with pytest.raises(LookupError):
        aws.transport.send_activity_task(
            wire.ActivityTask("wf", "r1", 2, "act", [], {"task_queue": "nope"}, 1, T0))


# -- later deliveries: SQS delays up to 15 minutes, Scheduler beyond ---------------------------
def test_a_delivery_within_15_minutes_goes_through_the_timer_queue(aws: Stack):
    msg = wire.TimerFired("wf", "r1", "t:1", seq=1)
    aws.transport.deliver_at(T0 + 600, wire.Envelope(msg), "t:1")
    aws.at(T0 + 599)
    assert aws.take("TimerQueue") == []
    aws.at(T0 + 601)
    assert [wire.Due.decode(b) for b in bodies(aws.take("TimerQueue"))] == [
        wire.Due(T0 + 600, "t:1", wire.Envelope(msg))]


def test_a_later_delivery_is_a_one_time_schedule_that_fires_once_and_goes(aws: Stack):
    msg = wire.TimerFired("wf", "r1", "t:2", seq=2)
    due = T0 + 7200.4
    aws.transport.deliver_at(due, wire.Envelope(msg), "t:2")
    aws.transport.deliver_at(due, wire.Envelope(msg), "t:2")  # a retry creates nothing more
    group = aws.transport.settings.schedule_group
    names = [s["Name"] for s in aws.scheduler.client.list_schedules(GroupName=group)["Schedules"]]
    assert names == [keys.timer_schedule("t:2")]
    aws.at(due)  # Scheduler fires at whole seconds, never before the time asked for
    assert aws.take("TimerQueue") == []
    aws.at(due + 1)
    assert [wire.Due.decode(b) for b in bodies(aws.take("TimerQueue"))] == [
        wire.Due(due, "t:2", wire.Envelope(msg))]
    assert aws.scheduler.client.list_schedules(GroupName=group)["Schedules"] == []
    aws.at(due + 86_400)
    assert aws.take("TimerQueue") == []


def test_a_cancelled_later_delivery_never_fires(aws: Stack):
    msg = wire.TimerFired("wf", "r1", "t:3", seq=3)
    aws.transport.deliver_at(T0 + 5000, wire.Envelope(msg), "t:3")
    aws.transport.cancel_at("t:3")
    aws.transport.cancel_at("t:3")  # gone already: no error
    aws.at(T0 + 10_000)
    assert aws.take("TimerQueue") == []


def test_a_delivery_already_due_is_forwarded_at_once(aws: Stack):
    msg = wire.TimerFired("wf", "r1", "t:4", seq=4)
    aws.transport.deliver_at(T0 - 5, wire.Envelope(msg), "t:4")
    assert [wire.decode_message(b) for b in bodies(aws.take("WorkflowTaskQueue"))] == [msg]


# -- what a handler hands back -----------------------------------------------------------------
def test_requeued_bodies_come_back_as_fresh_messages(aws: Stack):
    url = aws.url("TimerQueue")
    aws.sqs.send_message(QueueUrl=url, MessageBody="old")
    aws.sqs.receive_message(QueueUrl=url)
    arn = aws.stack.arns["TimerQueue"]
    assert aws.transport.requeue(arn, ["a", "b" * 10, "c"]) == []
    got = aws.take("TimerQueue")
    assert sorted(m["Body"] for m in got) == ["a", "b" * 10, "c"]
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in got} == {"1"}


def test_released_and_deferred_workflow_tasks_come_back_when_asked(aws: Stack):
    for n in (1, 2):
        aws.transport.send_workflow_task(wire.Start(f"wf-{n}", "r", keys.start(f"r{n}")))
    url = aws.url("WorkflowTaskQueue")
    got = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(got) == 2
    aws.transport.release([got[0]["ReceiptHandle"]])
    aws.transport.retry_soon(got[1]["ReceiptHandle"], 20)
    aws.at(T0 + 1)
    assert [wire.decode_message(b).workflow_id for b in bodies(aws.take("WorkflowTaskQueue"))
            ] == ["wf-1"]
    aws.at(T0 + 22)
    again = aws.take("WorkflowTaskQueue")
    assert [(wire.decode_message(json.loads(m["Body"])).workflow_id,
             m["Attributes"]["ApproximateReceiveCount"]) for m in again] == [("wf-2", "2")]


# -- recurring schedules -----------------------------------------------------------------------
def test_a_rate_schedule_fires_from_its_start_into_the_trigger_queue(aws: Stack):
    body = json.dumps({"ostinato": "schedule", "schedule": "s1",
                       "scheduled_time": "<aws.scheduler.scheduled-time>"})
    aws.scheduler.put_recurring("sched-s1", "rate(1 hour)", "UTC", T0 + 100, body, "s1")
    aws.at(T0 + 100 + 3 * 3600 + 1)
    fired = [b["scheduled_time"] for b in bodies(aws.take("TriggerQueue"))]
    assert fired == ["2027-01-15T08:02:10Z", "2027-01-15T09:02:10Z", "2027-01-15T10:02:10Z",
                     "2027-01-15T11:02:10Z"]
    assert aws.scheduler.delete_recurring("sched-s1") is True
    assert aws.scheduler.delete_recurring("sched-s1") is False
    aws.at(T0 + 10 * 3600)
    assert aws.take("TriggerQueue") == []


def test_a_cron_schedule_fires_at_occurrences_after_its_creation(aws: Stack):
    body = json.dumps({"t": "<aws.scheduler.scheduled-time>"})
    aws.scheduler.put_recurring("sched-c", "cron(0 * * * ? *)", "UTC", None, body, "c")
    aws.scheduler.put_recurring("sched-c", "cron(30 * * * ? *)", "UTC", None, body, "c")
    aws.at(T0 + 2 * 3600)
    assert [b["t"] for b in bodies(aws.take("TriggerQueue"))] == [
        "2027-01-15T08:30:00Z", "2027-01-15T09:30:00Z"]


def test_an_expression_scheduler_refuses_is_a_value_error(aws: Stack):
    if aws.name == "moto":
        pytest.xfail("moto accepts any schedule expression; EventBridge Scheduler refuses it")
    with pytest.raises(ValueError, match="refused"):
        aws.scheduler.put_recurring("sched-bad", "rate(banana)", "UTC", None, "{}", "")


# -- events ------------------------------------------------------------------------------------
def test_put_events_reach_the_trigger_queue_through_the_rule(aws: Stack):
    answer = aws.bus.put_events([
        {"Source": "shop", "DetailType": "OrderPlaced", "Detail": {"id": "7"}},
        {"Source": "elsewhere", "DetailType": "OrderPlaced", "Detail": {"id": "8"}}])
    assert answer["FailedEntryCount"] == 0 and len(answer["Entries"]) == 2
    events = bodies(aws.take("TriggerQueue"))
    assert [(e["source"], e["detail-type"], e["detail"]) for e in events] == [
        ("shop", "OrderPlaced", {"id": "7"})]
    assert {"id", "time", "region", "version", "resources"} <= set(events[0])


PATTERNS: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    ({"source": ["shop", "billing"]}, {"source": "billing"}, True),
    ({"source": ["shop"]}, {"source": "shopping"}, False),
    ({"detail": {"kind": ["a"]}}, {"detail": {"kind": "a", "x": 1}}, True),
    ({"detail": {"kind": ["a"]}}, {"detail": {"other": "a"}}, False),
    ({"detail": {"tags": ["red"]}}, {"detail": {"tags": ["blue", "red"]}}, True),
    ({"detail-type": [{"prefix": "Order"}]}, {"detail-type": "OrderPlaced"}, True),
    ({"detail-type": [{"prefix": "Order"}]}, {"detail-type": "Refund"}, False),
    ({"detail": {"n": [{"numeric": [">", 5, "<=", 10]}]}}, {"detail": {"n": 10}}, True),
    ({"detail": {"n": [{"numeric": [">", 5]}]}}, {"detail": {"n": 5}}, False),
    ({"detail": {"k": [{"exists": True}]}}, {"detail": {"k": None}}, True),
    ({"detail": {"k": [{"exists": False}]}}, {"detail": {}}, True),
    ({"detail": {"k": [{"exists": False}]}}, {"detail": {"k": 1}}, False),
    ({"source": [{"anything-but": ["shop"]}]}, {"source": "billing"}, True),
    ({"source": [{"anything-but": ["shop"]}]}, {"source": "shop"}, False),
    ({"source": ["shop"], "detail-type": ["A"]}, {"source": "shop", "detail-type": "B"}, False),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), PATTERNS)
def test_event_patterns_match_as_moto_matches_them(pattern: dict[str, Any],
                                                   event: dict[str, Any], expected: bool):
    from moto.events.models import EventPattern

    assert pattern_matches(pattern, event) is expected
    assert bool(EventPattern.load(json.dumps(pattern)).matches_event(event)) is expected
