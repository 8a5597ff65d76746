"""The simulation's seeded scheduler and the memory stack's opt-in choices it drives: SQS
delivery within its semantics, Lambda timeouts mid-batch, the handlers' time guard,
throttling (`ostinato._local.sim.choices`, `_local/memory/sqs.py`, `lambda_esm.py`)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from botocore.exceptions import ClientError

import ostinato
from ostinato._local.emulator import LambdaContext
from ostinato._local.eventbus import as_event
from ostinato._local.faults import Call, throttled
from ostinato._local.memory.faults import MemoryFaultInjector
from ostinato._local.memory.sqs import MemorySqs
from ostinato._local.sim.choices import FLOOR, Rates, SeededScheduler, SimContext
from ostinato.testing import WorkflowEnvironment


@ostinato.workflow
async def greet(ctx: ostinato.WorkflowContext, name: str) -> str:
    return f"hi {name}"


SOURCE = "test.simsched"
app = ostinato.App(workflows=[greet], triggers=[ostinato.EventTrigger(
    greet, source=SOURCE, args=lambda event: [event["detail"]["name"]],
    id=lambda event: "greet-" + event["detail"]["name"])])
NAMES = ["a", "b", "c"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# -- SQS: what the choices may and may not change -------------------------------------------
def test_fifo_semantics_hold_whatever_the_choices():
    """Per-group order, one batch in flight per group and no redelivery of a deleted message,
    under a scheduler that duplicates every deleted message it may and delays every one."""
    clock = Clock()
    sqs = MemorySqs(clock)
    scheduler = sqs.choices = SeededScheduler(7, Rates(duplicates=1.0, delays=1.0))
    queue = sqs.create_queue("q.fifo", {"FifoQueue": "true",
                                        "ContentBasedDeduplication": "true"})
    sent = {g: [f"{g}{i}" for i in range(8)] for g in "xyz"}
    for i in range(8):
        for group in "xyz":
            queue.send(sent[group][i], group=group)
    rng, delivered = random.Random(1), {g: [] for g in "xyz"}
    while any(len(delivered[g]) < 8 for g in "xyz"):
        batch = queue.receive(rng.randint(1, 10))
        groups = [m.group for m in batch]
        assert not {m.group for m in queue.receive(10)} & set(groups)  # in flight: held back
        for message in batch:
            delivered[message.group].append(message.body)
            queue.delete(message.receipt)
        clock.now += 1000  # whatever the second receive took comes back
    assert delivered == sent  # each exactly once, in order
    assert scheduler.counts["fifo group order"] > 0  # the groups came in other orders
    assert not scheduler.counts["duplicate"] and not scheduler.counts["delay"]


def test_a_standard_queue_reorders_and_delivers_a_deleted_message_again():
    clock = Clock()
    sqs = MemorySqs(clock)
    plain = sqs.create_queue("plain")
    for i in range(5):
        plain.send(f"m{i}")
    assert [m.body for m in plain.receive(10)] == [f"m{i}" for i in range(5)]  # no choices
    scheduler = sqs.choices = SeededScheduler(3, Rates(duplicates=1.0, delays=0.0,
                                                       batching_windows=0.0))
    queue = sqs.create_queue("chosen", {"VisibilityTimeout": "60"})
    for i in range(10):
        queue.send(f"m{i}")
    first = queue.receive(3)
    assert [m.body for m in first] != ["m0", "m1", "m2"] and scheduler.counts["reorder"]
    queue.delete(first[0].receipt)  # deleted, and delivered again (at-least-once)
    assert scheduler.counts["duplicate"] == 1
    clock.now += 61
    again = [m for m in queue.receive(10) if m.body == first[0].body]
    assert again and again[0].receives == 2


# -- Lambda: timeouts mid-batch, the time guard, throttling ----------------------------------
def trigger_poller(env: WorkflowEnvironment) -> Any:
    return next(p for p in env.pollers if p.mapping.function == "EventsFunction")


def send_events(env: WorkflowEnvironment, poller: Any) -> None:
    """Three trigger events on the trigger queue at once (one batch), as EventBridge sends."""
    for name in NAMES:
        event = as_event({"source": SOURCE, "detail-type": "Hello", "detail": {"name": name}},
                         env.clock())
        env.sqs.send_message(QueueUrl=poller.mapping.queue_url, MessageBody=json.dumps(event))


def recording(poller: Any) -> list[list[tuple[str, str]]]:
    """Wrap the poller's handler to record each invocation's (body name, receive count)."""
    seen: list[list[tuple[str, str]]] = []
    handler = poller.handler

    def record(event: dict[str, Any], context: Any) -> Any:
        seen.append([(json.loads(r["body"])["detail"]["name"],
                      r["attributes"]["ApproximateReceiveCount"]) for r in event["Records"]])
        return handler(event, context)

    poller.handler = record
    return seen


def test_an_invocation_killed_mid_batch_keeps_what_it_did_and_the_batch_comes_back():
    """Lambda stops the events function after its second record: the first two workflows
    are started (their side effects stay), the third is not; nothing is deleted, and after
    the visibility timeout all three come back with their receive count raised, each
    workflow starting exactly once."""
    with WorkflowEnvironment(app) as env:
        poller = trigger_poller(env)
        seen = recording(poller)
        send_events(env, poller)

        def kill_at_third_record(call: Call) -> str | None:
            reads.append(call.operation == "get_head")  # each record starts with one
            return "kill before" if sum(reads) == 3 and reads[-1] else None

        reads: list[bool] = []
        with MemoryFaultInjector(kill_at_third_record) as injector:
            assert poller.poll() == 3
        assert [when for _, when in injector.injected] == ["kill before"]
        assert seen == [[("a", "1"), ("b", "1"), ("c", "1")]] and not env.handler_errors
        store = env.client.store
        assert [store.get_head(f"greet-{n}") is not None for n in NAMES] == [True, True, False]
        counts = env.sqs.get_queue_attributes(QueueUrl=poller.mapping.queue_url)["Attributes"]
        assert counts["ApproximateNumberOfMessagesNotVisible"] == "3"  # none deleted
        env.sleep(181)  # the trigger queue's visibility timeout (180 s)
        assert sorted(seen[1]) == [("a", "2"), ("b", "2"), ("c", "2")]
        for name in NAMES:
            handle = env.client.get_workflow_handle(f"greet-{name}")
            assert handle.result() == f"hi {name}"
            assert [e.event_type for e in handle.history()].count(
                "WorkflowExecutionStarted") == 1


class ShortOnTime:
    """InvocationChoices whose context has 30 s left at first, then 6 s (the time guard
    keeps 5 s and a trigger record may take 2 s: the second record must not start)."""

    def batch_size(self, mapping: Any) -> int:
        return int(mapping.batch_size)

    def throttled(self, mapping: Any) -> bool:
        return False

    def begin(self, mapping: Any, records: int) -> LambdaContext:
        reads = iter([30_000])

        class Context(LambdaContext):
            def get_remaining_time_in_millis(self) -> int:
                return next(reads, 6_000)

        return Context(mapping.function, timeout=mapping.timeout)

    def end(self, context: Any) -> None:
        pass


def test_a_context_running_short_makes_the_guard_hand_back_what_it_did_not_start():
    with WorkflowEnvironment(app) as env:
        poller = trigger_poller(env)
        seen = recording(poller)
        send_events(env, poller)
        poller.choices = ShortOnTime()
        assert poller.poll() == 3
        store = env.client.store
        assert [store.get_head(f"greet-{n}") is not None for n in NAMES] == [True, False, False]
        poller.choices = None
        env.drain()
        # b and c were re-sent untouched, as new messages: first receives again
        assert [sorted(batch) for batch in seen[1:]] == [[("b", "1"), ("c", "1")]]
        assert [env.client.get_workflow_handle(f"greet-{n}").result() for n in NAMES] == [
            "hi a", "hi b", "hi c"]


def test_a_slow_context_runs_short_then_is_killed_at_the_call_that_overruns_it():
    rng = random.Random(5)
    context = SimContext("TimerFunction", timeout=30.0, slow=True, records=3)
    left = [context.get_remaining_time_in_millis()]
    while (kill := context.charge(rng)) is None:
        left.append(context.get_remaining_time_in_millis())
    assert kill in ("kill before", "kill after") and context.spent > 30.0
    assert left == sorted(left, reverse=True) and left[-1] >= FLOOR * 1000 and left[0] == 30_000
    assert context.killed == "timeout mid-batch"  # read twice: a second record had started
    crash = SimContext("F", timeout=30.0, crash_at=2)
    assert crash.charge(rng) is None and crash.charge(rng) and crash.killed == "crash"


@pytest.mark.parametrize(("service", "code", "status"), [
    ("dynamodb", "ProvisionedThroughputExceededException", 400), ("sqs", "RequestThrottled", 400),
    ("scheduler", "ThrottlingException", 429), ("events", "ThrottlingException", 400),
    ("s3", "SlowDown", 503)])
def test_a_throttle_is_the_error_each_service_answers(service, code, status):
    error = throttled(service, "Op")
    assert isinstance(error, ClientError) and error.response["Error"]["Code"] == code
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_a_throttled_table_write_fails_the_task_and_the_redelivery_completes_the_workflow():
    with WorkflowEnvironment(app) as env:
        throttles: list[Call] = []

        def throttle_first_append(call: Call) -> str | None:
            if call.operation == "append" and not throttles:
                throttles.append(call)
                return "throttle"
            return None

        with MemoryFaultInjector(throttle_first_append) as injector:
            handle = env.client.start_workflow(greet, "t", id="greet-t")
            assert handle.result() == "hi t"
        assert [(c.operation, when) for c, when in injector.injected] == [("append", "throttle")]
