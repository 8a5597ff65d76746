"""Event triggers end to end, on the virtual clock: an EventBridge event -> the template's rule
-> trigger queue -> the `events` function -> `EventTrigger`s -> workflows.

Plus the sample events of `events/`, the HTTP route that publishes events, and one run of
`ostinato dev` (a subprocess) driven over HTTP.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import ostinato
from ostinato import EventTrigger, UnknownTypeError
from ostinato._client.triggers import TriggerError, handle_message
from ostinato.testing import WorkflowEnvironment
from tests.apps import triggered
from tests.apps.lambda_calls import api, invoke_events, load, sqs_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def order_placed(order_id: str, source: str = "shop", **detail: Any) -> dict[str, Any]:
    return {"source": source, "detail-type": "OrderPlaced",
            "detail": {"id": order_id, "items": ["apple", "pear"], "customer": "ann", **detail}}


@pytest.fixture
def env(make_env):
    env = make_env(triggered.app, start_time=T0)
    env.starts = Counter()

    def count(wid: str, rid: str, events: list[Any]) -> None:
        env.starts.update(wid for e in events if e.event_type == "WorkflowExecutionStarted")

    env.engine.on_events = count
    return env


def started(env: Any) -> list[str]:
    return sorted(w.workflow_id for w in env.client.list_workflows())


def queue_depth(env: Any, logical_id: str) -> int:
    attrs = env.sqs.get_queue_attributes(
        QueueUrl=env.stack.refs[logical_id],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attrs["Attributes"].values())


# -- delivery ----------------------------------------------------------------------------------
def test_an_event_delivered_twice_starts_one_workflow(env):
    event = env.deliver_event(order_placed("42"))
    order = env.client.get_workflow_handle("order-42")
    assert order.result() == {"order": "42", "receipts": ["reserved apple", "reserved pear"]}
    run_id = order.describe().run_id

    env.deliver_event(event)  # EventBridge's at-least-once: the same event again, closed run
    env.deliver_event(order_placed("42"))  # a producer's retried PutEvents: a new event id
    env.sleep(timedelta(minutes=10))

    assert started(env) == ["notify-42", "order-42"]
    assert env.starts == Counter({"order-42": 1, "notify-42": 1})
    assert order.describe().run_id == run_id
    assert queue_depth(env, "TriggerQueue") == queue_depth(env, "TriggerDLQ") == 0
    assert env.handler_errors == []


def test_duplicates_in_flight_together_start_one_workflow(env):
    from concurrent.futures import ThreadPoolExecutor

    event = {**order_placed("7"), "id": "e-7", "time": "2026-01-01T00:00:00Z"}
    triggers = triggered.app.triggers
    with ThreadPoolExecutor(8) as pool:  # eight consumers of the trigger queue at once
        list(pool.map(lambda _: handle_message(env.client, triggers, event), range(8)))
    answer = invoke_events(sqs_event("sqs_trigger_event.json", event, event))  # one batch

    env.sleep(timedelta(minutes=1))
    assert answer == {"batchItemFailures": []}
    assert env.starts == Counter({"order-7": 1, "notify-7": 1})


def test_each_matching_trigger_starts_its_own_workflow(env):
    env.deliver_event(order_placed("1"))
    env.deliver_event({"source": "shop", "detail-type": "OrderCancelled", "detail": {"id": "2"}})
    env.deliver_event({"source": "shop", "detail-type": "OrderLost", "detail": {"id": "3"}})
    env.deliver_event(order_placed("4", source="shop.eu"))  # only notify listens to shop.eu
    env.sleep(timedelta(minutes=1))

    assert started(env) == ["notify-1", "notify-4", "order-1", "refund-2", "refund-3"]
    assert env.client.get_workflow_handle("refund-3").result() == "refunded 3"
    assert env.client.get_workflow_handle("notify-4").result() == "told ann"  # args: [detail]


def test_events_no_trigger_matches_are_dropped(env):
    env.deliver_event({"source": "shop", "detail-type": "OrderShipped", "detail": {"id": "9"}})
    env.deliver_event({"source": "elsewhere", "detail-type": "OrderPlaced",
                       "detail": {"id": "9"}})  # not even routed: the rule lists the sources

    assert started(env) == []
    assert queue_depth(env, "TriggerQueue") == queue_depth(env, "TriggerDLQ") == 0
    assert env.handler_errors == []
    # what the events function does with one that reaches it anyway
    outcomes = handle_message(env.client, triggered.app.triggers,
                              {"source": "elsewhere", "detail-type": "X", "detail": {}})
    assert [(o.action, o.reason) for o in outcomes] == [("dropped", "no trigger matches")]


def test_a_failing_trigger_dead_letters_the_event_after_the_others_ran(env):
    event = env.deliver_event({"source": "audit", "detail-type": "OrderAudited",
                               "detail": {"id": "5"}})
    env.sleep(timedelta(hours=1))  # redelivered after each visibility timeout, then parked

    assert started(env) == ["audit-notify-5"]  # the working trigger: once, over 5 deliveries
    assert env.starts == Counter({"audit-notify-5": 1})
    assert queue_depth(env, "TriggerQueue") == 0
    parked = env.sqs.receive_message(QueueUrl=env.stack.refs["TriggerDLQ"])["Messages"]
    assert [json.loads(m["Body"]) for m in parked] == [event]
    assert len(env.handler_errors) == 5  # one failed invocation per delivery
    with pytest.raises(TriggerError, match="KeyError: 'no_such_field'"):
        handle_message(env.client, triggered.app.triggers, event)


def test_put_events_on_the_bus_reach_the_triggers(make_env):
    import boto3

    # moto: any boto3 client in the process reaches its bus (memory: the client's own bus)
    env = make_env(triggered.app, start_time=T0, backend="moto")

    events = boto3.client("events", region_name="us-east-1")
    answer = events.put_events(Entries=[{"Source": "shop", "DetailType": "OrderPlaced",
                                         "Detail": json.dumps(order_placed("11")["detail"])}])
    assert answer["FailedEntryCount"] == 0
    env.drain()
    assert started(env) == ["notify-11", "order-11"]


def test_post_events_publishes_to_the_bus(env):
    status, answer = api("POST", "/events", {"Entries": [
        {"Source": "shop", "DetailType": "OrderPlaced",
         "Detail": json.dumps(order_placed("21")["detail"])},
        {"Source": "shop", "DetailType": "OrderCancelled", "Detail": {"id": "22"}}]})
    assert status == 200 and answer["FailedEntryCount"] == 0
    assert len(answer["Entries"]) == 2 and all("EventId" in e for e in answer["Entries"])
    env.drain()
    assert started(env) == ["notify-21", "order-21", "refund-22"]

    status, body = api("POST", "/events", {"Entries": []})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    status, body = api("POST", "/events", {"Entries": [{"Source": "shop"}]})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    doc = api("GET", "/openapi.json")[1]
    assert "post" in doc["paths"]["/events"]


# -- the sample events feed the function as EventBridge and SQS would ---------------------------
def test_the_sample_events_start_the_example_order_once(make_env):
    from examples import event_order

    env = make_env(event_order.app, start_time=T0)
    direct = load("eventbridge_order_placed.json")  # a rule with a Lambda target sends this
    queued = load("sqs_trigger_event.json")  # our rule -> trigger queue -> function

    assert invoke_events(direct) is None
    assert invoke_events(queued) == {"batchItemFailures": []}
    assert json.loads(queued["Records"][0]["body"]) == direct

    handle = env.client.get_workflow_handle("order-1001")
    result = handle.result()
    assert (result["status"], result["payment"]) == (
        "shipped", {"customer": "ann", "charged": 20})
    assert [w.workflow_id for w in env.client.list_workflows()] == ["order-1001"]
    assert len([e for e in handle.history()
                if e.event_type == "WorkflowExecutionStarted"]) == 1


def test_the_example_rejects_an_order_it_cannot_fill(make_env):
    from examples import event_order

    env = make_env(event_order.app, start_time=T0)
    env.deliver_event({"source": "shop", "detail-type": "OrderPlaced", "detail": {
        "id": "1002", "customer": "bo", "items": ["fig", "unobtainium"]}})
    assert env.client.get_workflow_handle("order-1002").result() == {
        "order": "1002", "status": "rejected", "released": ["fig"]}


# -- definitions -------------------------------------------------------------------------------
def test_trigger_definitions_are_checked():
    with pytest.raises(TypeError, match="neither a type name nor an @workflow"):
        EventTrigger(len, source="shop")
    with pytest.raises(ValueError, match="source must be a non-empty"):
        EventTrigger("fulfil", source="")
    with pytest.raises(ValueError, match="detail_type must be a non-empty"):
        EventTrigger("fulfil", source="shop", detail_type=[])
    with pytest.raises(TypeError):
        EventTrigger("fulfil", "shop")  # source is keyword-only
    trigger = EventTrigger(triggered.fulfil, source=["a", "b"])
    assert trigger.workflow_type == "fulfil" and trigger.sources == {"a", "b"}
    assert trigger.matches({"source": "b", "detail-type": "anything"})
    assert trigger.workflow_id({"id": "ev-1"}) == "fulfil-ev-1"


def test_an_app_whose_trigger_names_an_unknown_workflow_is_refused():
    app = ostinato.App(workflows=[triggered.fulfil],
                       triggers=[EventTrigger("nope", source="shop")])
    with pytest.raises(UnknownTypeError, match="'nope'"), WorkflowEnvironment(app):
        pass


def test_trigger_functions_must_return_an_id_string_and_an_argument_list(env):
    event = {"id": "e", "source": "s", "detail-type": "t", "detail": {}}
    bad_id = EventTrigger("refund", source="s", id=lambda e: 42)
    bad_args = EventTrigger("refund", source="s", id=lambda e: "r", args=lambda e: {"a": 1})
    for trigger, problem in ((bad_id, "returned int, not a str"),
                             (bad_args, "returned dict, not a list")):
        with pytest.raises(TriggerError, match=problem):
            handle_message(env.client, [trigger], event)
    assert started(env) == []


# -- ostinato dev -------------------------------------------------------------------------------
def wait_log(server: Any, text: str, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while text not in server.log():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{server.log()[-3000:]}"
        time.sleep(0.05)


@pytest.mark.slow
def test_dev_accepts_events_and_fires_schedules(tmp_path):
    from tests.apps.devserver import DevServer

    server = DevServer(tmp_path / "dev.log", "tests.apps.triggered:app").start()
    try:
        assert "events     rule TriggerRule (sources: audit, shop, shop.eu)" in server.log()
        entry = {"Source": "shop", "DetailType": "OrderPlaced",
                 "Detail": json.dumps(order_placed("77")["detail"])}
        status, answer = server.http("POST", "/events", {"Entries": [entry]})
        assert status == 200 and answer["FailedEntryCount"] == 0
        done = server.wait_for("order-77", lambda d: d["status"] == "COMPLETED")
        assert done["result"]["receipts"] == ["reserved apple", "reserved pear"]

        server.http("POST", "/events", {"Entries": [entry]})  # again: nothing new
        server.http("POST", "/events", {"Entries": [
            {"Source": "shop", "DetailType": "Unheard", "Detail": "{}"}]})
        wait_log(server, "matches no trigger; dropped")
        assert "duplicate order-77" in server.log()
        assert server.http("GET", "/workflows/order-77")[1]["run_id"] == done["run_id"]

        # a rate schedule fires at once when created, then every interval: the first firing
        status, created = server.http("POST", "/schedules", {
            "name": "beat", "workflow_type": "refund", "args": ["beat"], "rate": "1 hour"})
        assert status == 201
        fired = datetime.fromisoformat(created["next_fire_time"])
        wid = f"beat-{fired:%Y%m%dT%H%M%SZ}"
        assert server.wait_for(wid, lambda d: d["status"] == "COMPLETED")["result"] == (
            "refunded beat")
        assert server.http("DELETE", "/schedules/beat")[0] == 204

        # the same through the CLI
        put = cli("event", "put", "--source", "shop", "--detail-type", "OrderCancelled",
                  '{"id": "78"}', api_url=server.url)
        assert put.returncode == 0 and put.stdout.startswith("published event ")
        result = cli("workflow", "result", "refund-78", "--timeout", "20", api_url=server.url)
        assert json.loads(result.stdout) == "refunded 78"  # waited for the trigger to start it
        created = cli("schedule", "create", "nightly", "refund", '"n"', "--cron", "0 3 * * ? *",
                      "--overlap", "allow_all", api_url=server.url)
        assert created.stdout.startswith("created schedule nightly: cron(0 3 * * ? *) (UTC)")
        listed = json.loads(cli("schedule", "list", "--json", api_url=server.url).stdout)
        assert [(s["name"], s["args"], s["overlap"]) for s in listed["schedules"]] == [
            ("nightly", ["n"], "allow_all")]
        assert "nightly" in cli("schedule", "list", api_url=server.url).stdout
        bad = cli("schedule", "create", "x", "refund", "--rate", "5 fortnights",
                  api_url=server.url)
        assert bad.returncode == 1 and bad.stderr.startswith("error: rate '5 fortnights'")
        assert "invalid_schedule, HTTP 400" in bad.stderr
        assert cli("schedule", "delete", "nightly", api_url=server.url).stdout == (
            "deleted schedule nightly\n")
        gone = cli("schedule", "delete", "nightly", api_url=server.url)
        assert gone.returncode == 1 and "schedule_not_found, HTTP 404" in gone.stderr
    finally:
        server.stop()


def cli(*args: str, api_url: str) -> Any:
    import os
    import subprocess
    import sys

    from tests.apps.devserver import ROOT

    done = subprocess.run([sys.executable, "-m", "ostinato._cli.main", *args], cwd=ROOT,
                          env={**os.environ, "OSTINATO_API_URL": api_url, "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done


# -- failures at the AWS boundary ---------------------------------------------------------------
def _one_order(faults: Any) -> Counter:
    """Deliver one OrderPlaced event under `faults`; return the runs started per workflow id."""
    from tests.apps.exactly_once import started_runs

    # moto: the fault injector fails botocore calls, and the runs are counted in its table
    with WorkflowEnvironment(triggered.app, start_time=T0, backend="moto") as env:
        with faults.attach(env):
            env.deliver_event(order_placed("f"))
            env.sleep(timedelta(minutes=30))  # redeliveries after visibility timeouts
        assert env.client.get_workflow_handle("order-f").result()["order"] == "f"
        assert env.client.get_workflow_handle("notify-f").result() == "told ann"
        return started_runs(env)


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_any_aws_call_of_the_events_function_starts_each_workflow_once(when):
    """The events function dies at its call i (before or after it took effect), for every i."""
    from tests.apps.exactly_once import crash_at_every_call

    calls = crash_at_every_call(_one_order, when, Counter({"order-f": 1, "notify-f": 1}))
    assert calls >= 6  # per trigger: read the id's run, send the wake-up, write the run
