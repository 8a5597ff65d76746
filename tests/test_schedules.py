"""Schedules end to end, on the virtual clock: create_schedule -> EventBridge Scheduler
(moto stores it, the emulation fires it) -> trigger queue -> the `events` function -> runs.

Plus the pieces on their own: cron/rate expressions, the Scheduler emulation on a fake clock
(what `ostinato dev` runs on the real one), the HTTP routes and the sample firing event.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import ostinato
from ostinato import PayloadTooLargeError, UnknownTypeError
from ostinato._client import schedules
from ostinato._client.schedules import (
    InvalidScheduleError,
    ScheduleAlreadyExistsError,
    ScheduleNotFoundError,
)
from ostinato._core.cron import iso, parse_cron, parse_expression, parse_rate
from ostinato._core.serde import MAX_PAYLOAD_BYTES
from ostinato._local.emulator import MAX_CATCH_UP, SchedulerEmulator
from tests.apps import scheduled
from tests.apps.lambda_calls import api, invoke_events, load, sqs_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday
HOUR = timedelta(hours=1)


def at(**delta: float) -> float:
    return (T0 + timedelta(**delta)).timestamp()


@pytest.fixture
def env(make_env):
    env = make_env(scheduled.app, start_time=T0)
    env.starts = Counter()  # workflow id -> runs started, whatever started them

    def count(wid: str, rid: str, events: list[Any]) -> None:
        env.starts.update(wid for e in events if e.event_type == "WorkflowExecutionStarted")

    env.engine.on_events = count
    return env


def runs(env: Any, workflow_type: str) -> dict[str, Any]:
    return {w.workflow_id: w for w in env.client.list_workflows(workflow_type=workflow_type)}


def scheduler_names(env: Any) -> list[str]:
    return [s["Name"] for s in env.scheduler.list_schedules(
        GroupName=env.settings.schedule_group)["Schedules"]]


def deliver_firing(env: Any, name: str, fire_time: float) -> None:
    """What Scheduler sends to the trigger queue for one firing (again, as on a retry)."""
    body = {"ostinato": "schedule", "schedule": name, "scheduled_time": iso(fire_time)}
    env.sqs.send_message(QueueUrl=env.stack.refs["TriggerQueue"], MessageBody=json.dumps(body))
    env.drain()


def queue_depth(env: Any, logical_id: str) -> int:
    attrs = env.sqs.get_queue_attributes(
        QueueUrl=env.stack.refs[logical_id],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attrs["Attributes"].values())


# -- firing ------------------------------------------------------------------------------------
def test_an_hourly_schedule_starts_one_run_per_firing_for_a_day(env):
    created = schedules.create_schedule(env.client, "hourly", scheduled.tick, "x",
                                        rate="1 hour", overlap="allow_all")
    assert (created.expression, created.next_fire_time) == ("rate(1 hour)", T0)
    assert scheduler_names(env) == ["sched-hourly"]

    env.sleep(timedelta(hours=23, minutes=30))

    expected = [f"hourly-20260101T{hour:02d}0000Z" for hour in range(24)]
    started = runs(env, "tick")
    assert sorted(started) == expected
    assert all(d.status == "COMPLETED" for d in started.values())
    assert env.client.get_workflow_handle(expected[5]).result() == f"x {expected[5]}"
    assert env.starts == Counter(expected), "a firing started more (or fewer) than one run"
    (described,) = schedules.list_schedules(env.client)
    assert (described.fired, described.skipped) == (24, 0)
    assert described.last_workflow_id == expected[-1]
    assert described.last_fire_time == T0 + 23 * HOUR
    assert described.next_fire_time == T0 + 24 * HOUR
    assert env.handler_errors == []


def test_a_schedule_fires_under_a_codec(make_env):
    """The firing's input reaches Scheduler readable, whatever the app's codec: Scheduler
    fills in `<aws.scheduler.scheduled-time>` only where it can read it (an encrypted or
    compressed input came back with the placeholder, and every firing failed)."""
    from ostinato.codecs import Zlib

    app = ostinato.App(workflows=[scheduled.tick, scheduled.slow_report], codec=Zlib())
    env = make_env(app, start_time=T0)
    schedules.create_schedule(env.client, "hourly", scheduled.tick, "x", rate="1 hour")
    env.sleep(timedelta(hours=2, minutes=30))
    assert sorted(runs(env, "tick")) == [f"hourly-20260101T0{h}0000Z" for h in range(3)]
    assert env.handler_errors == []


def test_a_firing_delivered_twice_starts_one_run(env):
    schedules.create_schedule(env.client, "daily", scheduled.tick, "d", cron="0 3 * * ? *")
    env.sleep(timedelta(hours=3, minutes=1))
    wid = "daily-20260101T030000Z"
    first = env.client.get_workflow_handle(wid)
    assert first.result() == f"d {wid}"

    # Scheduler retries a delivery it could not confirm; the run has closed meanwhile
    deliver_firing(env, "daily", at(hours=3))
    deliver_firing(env, "daily", at(hours=3))

    assert env.starts[wid] == 1
    assert first.describe().run_id == env.client.get_workflow_handle(wid).describe().run_id
    assert schedules.list_schedules(env.client)[0].fired == 1
    assert queue_depth(env, "TriggerQueue") == queue_depth(env, "TriggerDLQ") == 0


def test_two_copies_of_one_firing_in_one_batch_start_one_run(env):
    schedules.create_schedule(env.client, "daily", scheduled.tick, "d", cron="0 3 * * ? *")
    env.sleep(timedelta(hours=2, minutes=59, seconds=59))
    body = {"ostinato": "schedule", "schedule": "daily", "scheduled_time": "2026-01-01T03:00:00Z"}

    # both copies in one batch of the events function, before the emulation's own firing
    answer = invoke_events(sqs_event("sqs_schedule_fired.json", body, body))
    env.sleep(timedelta(minutes=1))

    assert answer == {"batchItemFailures": []}
    assert env.starts == Counter({"daily-20260101T030000Z": 1})


def test_racing_deliveries_of_one_firing_start_one_run(env):
    from concurrent.futures import ThreadPoolExecutor

    schedules.create_schedule(env.client, "daily", scheduled.tick, "d", cron="0 3 * * ? *",
                              overlap="skip")
    env.sleep(timedelta(hours=2, minutes=59, seconds=59))

    with ThreadPoolExecutor(8) as pool:  # eight consumers of the trigger queue at once
        outcomes = list(pool.map(lambda _: schedules.handle_firing(
            env.client, "daily", "2026-01-01T03:00:00Z"), range(8)))
    env.sleep(timedelta(minutes=1))

    assert {o.workflow_id for o in outcomes} == {"daily-20260101T030000Z"}
    assert env.starts == Counter({"daily-20260101T030000Z": 1})
    assert schedules.list_schedules(env.client)[0].fired == 1


def test_the_sample_firing_event_starts_its_run(make_env):
    env = make_env(scheduled.app, start_time=datetime(2026, 11, 25, 2, 59, tzinfo=UTC))
    schedules.create_schedule(env.client, "nightly", scheduled.tick, "n", cron="0 3 * * ? *")
    sample = load("sqs_schedule_fired.json")

    assert invoke_events(sample) == {"batchItemFailures": []}
    assert invoke_events(sample) == {"batchItemFailures": []}  # redelivered
    env.sleep(timedelta(minutes=5))  # and fired by the emulation too

    wid = "nightly-20261125T030000Z"
    assert env.client.get_workflow_handle(wid).result() == f"n {wid}"
    assert list(runs(env, "tick")) == [wid]


@pytest.mark.parametrize("overlap, started, skipped", [
    ("skip", ["T000000Z", "T020000Z"], 2),
    ("allow_all", ["T000000Z", "T010000Z", "T020000Z", "T030000Z"], 0),
])
def test_overlap_policy_with_runs_that_outlive_the_interval(env, overlap, started, skipped):
    schedules.create_schedule(env.client, "report", scheduled.slow_report, 90, rate="1 hour",
                              overlap=overlap)

    env.sleep(timedelta(hours=3, minutes=30))

    assert sorted(runs(env, "slow_report")) == [f"report-20260101{s}" for s in started]
    described = schedules.list_schedules(env.client)[0]
    assert (described.fired, described.skipped) == (len(started), skipped)
    if overlap == "skip":  # a repeated delivery of a skipped firing stays skipped
        deliver_firing(env, "report", at(hours=1))
        assert "report-20260101T010000Z" not in runs(env, "slow_report")
    assert all(n == 1 for n in env.starts.values())


def test_delete_stops_the_firings(env):
    schedules.create_schedule(env.client, "hourly", scheduled.tick, "x", rate="1 hour")
    env.sleep(timedelta(hours=2, minutes=30))
    assert len(runs(env, "tick")) == 3

    schedules.delete_schedule(env.client, "hourly")
    env.sleep(timedelta(hours=5))

    assert len(runs(env, "tick")) == 3
    assert schedules.list_schedules(env.client) == []
    assert scheduler_names(env) == []
    deliver_firing(env, "hourly", at(hours=3))  # in flight when the schedule went: dropped
    assert len(runs(env, "tick")) == 3
    assert queue_depth(env, "TriggerQueue") == queue_depth(env, "TriggerDLQ") == 0
    with pytest.raises(ScheduleNotFoundError, match="'hourly' not found"):
        schedules.delete_schedule(env.client, "hourly")

    # a namesake created later is not fooled by a late retry of the old one's firings
    schedules.create_schedule(env.client, "hourly", scheduled.tick, "y", rate="1 hour",
                              overlap="allow_all")
    deliver_firing(env, "hourly", at(hours=1))
    env.drain()
    assert env.starts["hourly-20260101T010000Z"] == 1
    assert sorted(runs(env, "tick"))[-1] == "hourly-20260101T073000Z"  # the namesake's first


def test_a_cron_schedule_in_a_time_zone(env):
    created = schedules.create_schedule(env.client, "paris", "tick", "p",
                                        cron="cron(0 3 ? * MON-FRI *)", timezone="Europe/Paris")
    assert created.next_fire_time == T0 + 2 * HOUR  # 03:00 in Paris is 02:00 UTC in winter

    env.sleep(timedelta(days=5))

    assert sorted(runs(env, "tick")) == [  # Thursday, Friday, (weekend), Monday
        "paris-20260101T020000Z", "paris-20260102T020000Z", "paris-20260105T020000Z"]


# -- refusals ----------------------------------------------------------------------------------
BAD = {
    "cron and rate": ({"cron": "0 3 * * ? *", "rate": "1 hour"}, "exactly one of cron"),
    "neither": ({}, "exactly one of cron"),
    "both day fields": ({"cron": "0 3 * * * *"}, "exactly one of day-of-month"),
    "five fields": ({"cron": "0 3 * * ?"}, "needs 6 fields"),
    "minute 60": ({"cron": "60 3 * * ? *"}, "60 is outside 0-59"),
    "zero rate": ({"rate": "0 minutes"}, "N >= 1"),
    "seconds": ({"rate": timedelta(seconds=30)}, "whole number of minutes"),
    "bad unit": ({"rate": "2 fortnights"}, "'N minutes'"),
    "one-time": ({"cron": "at(2026-01-01T00:00:00)"}, "needs 6 fields"),
    "overlap": ({"rate": "1 hour", "overlap": "buffer_one"}, "overlap must be one of"),
    "zone": ({"rate": "1 hour", "timezone": "Mars/Olympus"}, "unknown time zone"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_schedules_are_refused_before_anything_is_written(env, case):
    kwargs, message = BAD[case]
    with pytest.raises(InvalidScheduleError, match=message):
        schedules.create_schedule(env.client, "bad", "tick", "x", **kwargs)
    assert schedules.list_schedules(env.client) == [] and scheduler_names(env) == []


@pytest.mark.parametrize("name", ["", "has space", "slash/y", "x" * 59, "ünï"])
def test_bad_names_are_refused(env, name):
    with pytest.raises(InvalidScheduleError, match="schedule name"):
        schedules.create_schedule(env.client, name, "tick", rate="1 hour")


def test_unknown_types_big_arguments_and_taken_names(env):
    with pytest.raises(UnknownTypeError, match="'nope'"):
        schedules.create_schedule(env.client, "n", "nope", rate="1 hour")
    with pytest.raises(PayloadTooLargeError):
        schedules.create_schedule(env.client, "n", "tick", "x" * MAX_PAYLOAD_BYTES,
                                  rate="1 hour")
    assert schedules.list_schedules(env.client) == [] and scheduler_names(env) == []

    schedules.create_schedule(env.client, "n", "tick", "first", rate="1 hour")
    with pytest.raises(ScheduleAlreadyExistsError, match="'n' already exists"):
        schedules.create_schedule(env.client, "n", "tick", "second", cron="0 3 * * ? *")
    (kept,) = schedules.list_schedules(env.client)
    assert (kept.args, kept.expression) == (["first"], "rate(1 hour)")


# -- the HTTP API ------------------------------------------------------------------------------
def test_schedule_routes(env):
    status, created = api("POST", "/schedules", {
        "name": "nightly", "workflow_type": "tick", "args": ["n"], "cron": "0 3 * * ? *"})
    assert status == 201
    assert created["expression"] == "cron(0 3 * * ? *)" and created["overlap"] == "skip"
    assert created["next_fire_time"] == "2026-01-01T03:00:00+00:00"

    assert api("POST", "/schedules", {"name": "nightly", "workflow_type": "tick",
                                      "rate": "1 hour"})[1]["error"]["code"] == (
        "schedule_already_exists")
    status, body = api("POST", "/schedules", {"name": "x", "workflow_type": "tick",
                                              "cron": "0 3 * * * *"})
    assert (status, body["error"]["code"]) == (400, "invalid_schedule")
    status, body = api("POST", "/schedules", {"name": "x", "workflow_type": "nope",
                                              "rate": "1 hour"})
    assert (status, body["error"]["code"]) == (404, "unknown_workflow_type")
    status, body = api("POST", "/schedules", {"name": "a b", "workflow_type": "tick",
                                              "rate": "1 hour"})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    status, body = api("POST", "/schedules", {"name": "x", "workflow_type": "tick",
                                              "rate": "1 hour", "overlap": "maybe"})
    assert (status, body["error"]["code"]) == (400, "invalid_request")

    status, listed = api("GET", "/schedules")
    assert status == 200 and [s["name"] for s in listed["schedules"]] == ["nightly"]
    assert listed["schedules"][0] == created

    assert api("DELETE", "/schedules/nightly") == (204, None)
    status, body = api("DELETE", "/schedules/nightly")
    assert (status, body["error"]["code"]) == (404, "schedule_not_found")
    assert api("GET", "/schedules") == (200, {"schedules": []})

    doc = api("GET", "/openapi.json")[1]
    assert {"post", "get"} <= set(doc["paths"]["/schedules"])
    assert "delete" in doc["paths"]["/schedules/{name}"]


# -- expressions -------------------------------------------------------------------------------
CRON = {  # expression -> the first three fire times after 2026-01-01T00:00Z (UTC)
    "0 3 * * ? *": ["2026-01-01T03:00:00Z", "2026-01-02T03:00:00Z", "2026-01-03T03:00:00Z"],
    "0/20 * * * ? *": ["2026-01-01T00:20:00Z", "2026-01-01T00:40:00Z", "2026-01-01T01:00:00Z"],
    "15 10 ? * MON-FRI *": ["2026-01-01T10:15:00Z", "2026-01-02T10:15:00Z",
                            "2026-01-05T10:15:00Z"],
    "0 12 L * ? *": ["2026-01-31T12:00:00Z", "2026-02-28T12:00:00Z", "2026-03-31T12:00:00Z"],
    "0 12 LW * ? *": ["2026-01-30T12:00:00Z", "2026-02-27T12:00:00Z", "2026-03-31T12:00:00Z"],
    "0 9 1W * ? *": ["2026-01-01T09:00:00Z", "2026-02-02T09:00:00Z", "2026-03-02T09:00:00Z"],
    "0 18 ? * 6#3 *": ["2026-01-16T18:00:00Z", "2026-02-20T18:00:00Z", "2026-03-20T18:00:00Z"],
    "0 18 ? * 6#0 *": None,  # invalid: there is no 0th Friday
    "0 18 ? * 6L *": ["2026-01-30T18:00:00Z", "2026-02-27T18:00:00Z", "2026-03-27T18:00:00Z"],
    "30 1 1,15 JAN,JUL ? 2026-2027": ["2026-01-01T01:30:00Z", "2026-01-15T01:30:00Z",
                                      "2026-07-01T01:30:00Z"],
    "0 0 29 FEB ? 2026": [],  # never: no leap day in 2026
}


@pytest.mark.parametrize("expression", list(CRON))
def test_cron_fire_times(expression):
    expected = CRON[expression]
    if expected is None:
        with pytest.raises(ValueError):
            parse_cron(expression)
        return
    cron = parse_cron(expression)
    got, after = [], T0.timestamp()
    for _ in range(3):
        nxt = cron.next_fire(after)
        if nxt is None:
            break
        got.append(iso(nxt))
        after = nxt
    assert got == expected


def test_rates_count_from_their_start_and_print_as_scheduler_wants():
    assert parse_rate("1 minutes").expression == "rate(1 minute)"
    assert parse_rate("rate(5 minute)").expression == "rate(5 minutes)"
    assert parse_rate(timedelta(days=2)).expression == "rate(2 days)"
    assert parse_rate(timedelta(minutes=90)).expression == "rate(90 minutes)"
    rate = parse_expression("rate(2 hours)")
    start = at(minutes=7)
    assert rate.next_fire(at(), start=start) == start
    assert rate.next_fire(start, start=start) == at(hours=2, minutes=7)
    assert rate.next_fire(at(hours=5), start=start) == at(hours=6, minutes=7)


def test_cron_across_daylight_saving_changes():
    """As Scheduler: a wall-clock time the spring shift skips does not fire; one the autumn
    shift repeats fires once."""
    cron = parse_cron("30 2 * * ? *")  # 02:30 does not exist on 2026-03-29 in Paris
    after = datetime(2026, 3, 27, 12, tzinfo=UTC).timestamp()
    first = cron.next_fire(after, "Europe/Paris")
    second = cron.next_fire(first, "Europe/Paris")
    assert (iso(first), iso(second)) == ("2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z")
    cron = parse_cron("30 2 * * ? *")  # 02:30 happens twice on 2026-10-25: fires once
    after = datetime(2026, 10, 24, 12, tzinfo=UTC).timestamp()
    times = [cron.next_fire(after, "Europe/Paris")]
    times.append(cron.next_fire(times[0], "Europe/Paris"))
    assert [iso(t) for t in times] == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]


# -- the Scheduler emulation of `ostinato dev`, on a fake clock -------------------------------
class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def scheduler_emulation():
    import boto3
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        scheduler = boto3.client("scheduler", region_name="us-east-1")
        url = sqs.create_queue(QueueName="targets")["QueueUrl"]
        arn = "arn:aws:sqs:us-east-1:123456789012:targets"
        scheduler.create_schedule_group(Name="g")
        clock = FakeClock(T0.timestamp())
        emulator = SchedulerEmulator(scheduler, sqs, ["g"], {arn: url}, clock=clock)

        def create(name: str, expression: str, **extra: Any) -> None:
            scheduler.create_schedule(
                Name=name, GroupName="g", ScheduleExpression=expression,
                FlexibleTimeWindow={"Mode": "OFF"},
                Target={"Arn": arn, "RoleArn": "arn:aws:iam::123456789012:role/r",
                        "Input": json.dumps({"s": name, "t": "<aws.scheduler.scheduled-time>"})},
                **extra)

        def tick(to: float) -> list[tuple[str, str]]:
            """Advance the clock to `to`, firing what falls due on the way, as dev's loop does."""
            while (due := emulator.next_due()) is not None and due <= to:
                clock.now = max(clock.now, due)
                emulator.fire_due(clock.now)
            clock.now = to
            emulator.fire_due(to)
            fired = []
            while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
                    "Messages", []):
                for m in batch:
                    body = json.loads(m["Body"])
                    fired.append((body["s"], body["t"]))
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            return sorted(fired, key=lambda f: (f[1], f[0]))

        yield create, tick, scheduler, emulator, clock


def test_recurring_schedules_fire_on_the_clock(scheduler_emulation):
    create, tick, scheduler, emulator, _ = scheduler_emulation
    create("quarter", "cron(0/15 * * * ? *)")
    create("rate", "rate(10 minutes)", StartDate=datetime.fromtimestamp(at(minutes=5), UTC))
    create("once", f"at({(T0 + timedelta(minutes=20)):%Y-%m-%dT%H:%M:%S})",
           ActionAfterCompletion="DELETE")
    create("off", "rate(1 minute)", State="DISABLED")
    create("ending", "rate(10 minutes)", EndDate=datetime.fromtimestamp(at(minutes=12), UTC))
    assert emulator.next_due() == T0.timestamp()  # the ending rate starts at once

    fired = tick(at(minutes=31))

    assert fired == [
        ("ending", "2026-01-01T00:00:00Z"), ("rate", "2026-01-01T00:05:00Z"),
        ("ending", "2026-01-01T00:10:00Z"), ("quarter", "2026-01-01T00:15:00Z"),
        ("rate", "2026-01-01T00:15:00Z"), ("once", "2026-01-01T00:20:00Z"),
        ("rate", "2026-01-01T00:25:00Z"), ("quarter", "2026-01-01T00:30:00Z")]
    assert "once" not in [s["Name"] for s in scheduler.list_schedules(GroupName="g")["Schedules"]]
    assert emulator.next_due() == at(minutes=35)

    scheduler.delete_schedule(Name="rate", GroupName="g")
    assert tick(at(minutes=46)) == [("quarter", "2026-01-01T00:45:00Z")]


def test_a_clock_far_ahead_catches_up_a_bounded_number_of_firings(scheduler_emulation):
    create, _, _, emulator, clock = scheduler_emulation
    create("minutely", "rate(1 minute)")
    emulator.next_due()  # seen at T0: the rate counts from here
    clock.now = at(days=1)

    assert emulator.fire_due(clock.now) == MAX_CATCH_UP
    assert emulator.next_due() == at(days=1, minutes=1)


# -- the client's methods (thin delegations to ostinato._client.schedules) ----------------------
@pytest.mark.skipif(not hasattr(ostinato.Client, "create_schedule"),
                    reason="Client.create_schedule/list_schedules/delete_schedule not added yet")
def test_the_client_methods(env):
    client = env.client
    created = client.create_schedule("nightly", scheduled.tick, "n", cron="0 3 * * ? *",
                                     overlap="allow_all")
    assert client.list_schedules() == [created]
    env.sleep(timedelta(hours=4))
    assert env.client.get_workflow_handle("nightly-20260101T030000Z").result() == (
        "n nightly-20260101T030000Z")
    client.delete_schedule("nightly")
    assert client.list_schedules() == []


# -- failures at the AWS boundary ---------------------------------------------------------------
def _two_firings(faults: Any) -> Counter:
    """Two firings of an hourly schedule under `faults`; return the runs started per id."""
    from ostinato.testing import WorkflowEnvironment
    from tests.apps.exactly_once import started_runs

    # moto: the fault injector fails botocore calls, and the runs are counted in its table
    with WorkflowEnvironment(scheduled.app, start_time=T0, backend="moto") as env:
        schedules.create_schedule(env.client, "hourly", scheduled.tick, "x", rate="1 hour")
        with faults.attach(env):
            env.sleep(timedelta(hours=1, minutes=30))  # redeliveries included
        assert schedules.list_schedules(env.client)[0].fired == 2
        for wid in ("hourly-20260101T000000Z", "hourly-20260101T010000Z"):
            assert env.client.get_workflow_handle(wid).result() == f"x {wid}"
        return started_runs(env)


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_any_aws_call_of_the_events_function_starts_each_firing_once(when):
    """The events function dies at its call i (before or after it took effect), for every i."""
    from tests.apps.exactly_once import crash_at_every_call

    calls = crash_at_every_call(_two_firings, when, Counter(
        {"hourly-20260101T000000Z": 1, "hourly-20260101T010000Z": 1}))
    assert calls >= 8  # per firing: read, claim, send the wake-up, write the run (+ overlap)
