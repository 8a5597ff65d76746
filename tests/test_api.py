"""The HTTP API handler, in-process: API Gateway HTTP API v2 events in, JSON out.

Requests are built from events/api_start_workflow.json (the sample `sam local invoke` uses)
and handed to `functions/api/app.handler` inside a WorkflowEnvironment.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from examples import approval, order
from functions.api.app import handler
from hypothesis import given, settings, strategies

import ostinato
from ostinato._api import models
from ostinato._core import cron
from ostinato._core.replay import check_document
from ostinato._local.emulator import LambdaContext
from ostinato.testing import WorkflowEnvironment
from tests.test_updates import cart, price

SAMPLE = json.loads((Path(__file__).resolve().parents[1] / "events" /
                     "api_start_workflow.json").read_text())
DESCRIBE_KEYS = {"workflow_id", "run_id", "workflow_type", "status", "result", "error",
                 "custom_status", "start_time", "close_time"}


def call(method: str, path: str, body: Any = None, *, raw: str | bytes | None = None,
         query: dict[str, Any] | None = None, base64_body: bool = False) -> tuple[int, Any]:
    """One request through the api handler; returns (status, decoded JSON body).

    `path` is what API Gateway puts in `rawPath`: already decoded. Bytes in `raw` go base64,
    as API Gateway sends a body that is not text."""
    event = copy.deepcopy(SAMPLE)
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = urlencode(query or {})
    if query:
        event["queryStringParameters"] = {k: str(v) for k, v in query.items()}
    text = raw if raw is not None else (None if body is None else json.dumps(body))
    if text is None:
        event.pop("body")
        event["headers"].pop("content-length")
    else:
        data = text if isinstance(text, bytes) else text.encode()
        base64_body = base64_body or isinstance(text, bytes)
        event["body"] = base64.b64encode(data).decode() if base64_body else text
        event["isBase64Encoded"] = base64_body
        event["headers"]["content-length"] = str(len(data))
    answer = handler(event, LambdaContext("ApiFunction", aws_request_id="test"))
    assert answer["headers"]["Content-Type"] == "application/json"
    return answer["statusCode"], json.loads(answer["body"])


def start(wid: str = "order-1", items: list[str] | None = None, **extra: Any) -> tuple[int, Any]:
    return call("POST", "/workflows", {"workflow_type": "order", "args": [items or ["apple"]],
                                       "id": wid, **extra})


def assert_error(answer: tuple[int, Any], status: int, code: str, *words: str) -> None:
    got_status, got = answer
    assert (got_status, set(got), set(got["error"])) == (status, {"error"}, {"code", "message"})
    assert got["error"]["code"] == code
    for word in words:
        assert word in got["error"]["message"]


def head_count(env: Any) -> int:
    return len(env.runtime.store.list_heads(limit=1000)[0])


def assert_nothing_written(env: Any, heads_before: int) -> None:
    """No run recorded, no workflow task queued (the queue was drained before the request)."""
    assert head_count(env) == heads_before
    attrs = env.sqs.get_queue_attributes(QueueUrl=env.settings.workflow_queue_url,
                                         AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"


def event_types(env: Any, wid: str) -> list[str]:
    return [e.event_type for e in env.client.get_workflow_handle(wid).history()]


@ostinato.workflow
async def stuck(ctx: ostinato.WorkflowContext) -> None:
    """An update that never finishes (its handler waits for nothing that will come)."""
    async def wait() -> None:
        await ctx.wait_condition(lambda: False)

    ctx.on_update("wait", wait)
    await ctx.wait_condition(lambda: False)


APP = ostinato.App(workflows=[order.order, approval.expense, cart, stuck],
                   activities=[order.reserve, order.charge, order.ship,
                               approval.send_approval_request, approval.pay, price])


@pytest.fixture(scope="module")
def shared_env():
    with WorkflowEnvironment(APP) as env:
        yield env


@pytest.fixture
def env(shared_env):
    """One environment for the module (they cost seconds each); tests use their own ids."""
    shared_env.drain()
    return shared_env


@pytest.fixture
def heads(env) -> int:
    return head_count(env)


# -- the happy paths ------------------------------------------------------------------------
def test_start_answers_201_and_the_run_runs(env):
    status, started = start("happy")
    assert status == 201 and set(started) == {"workflow_id", "run_id"}
    assert started["workflow_id"] == "happy"
    env.drain()
    status, described = call("GET", "/workflows/happy")
    assert status == 200 and set(described) == DESCRIBE_KEYS
    assert described["run_id"] == started["run_id"]
    assert (described["workflow_type"], described["status"]) == ("order", "RUNNING")
    assert described["custom_status"] == "awaiting approval"


def test_start_without_id_gets_a_generated_one(env):
    status, started = call("POST", "/workflows", {"workflow_type": "order", "args": [["a"]]})
    assert status == 201 and len(started["workflow_id"]) == 36


def test_signal_query_and_completion(env):
    start("sq")
    env.drain()
    assert call("POST", "/workflows/sq/queries/progress") == (
        200, {"result": {"approved": [], "items": ["apple"]}})

    assert call("POST", "/workflows/sq/signals/approve", {"args": ["ann"]}) == (
        202, {"result": None})

    env.drain()
    progress = call("POST", "/workflows/sq/queries/progress", {"args": []})[1]
    assert progress["result"]["approved"] == ["ann"]
    env.client.get_workflow_handle("sq").result()  # the 1-hour sleep, virtually
    described = call("GET", "/workflows/sq")[1]
    assert described["status"] == "COMPLETED"
    assert described["result"]["approved_by"] == "ann" and described["close_time"]


def test_history_is_the_event_list_and_a_replayable_document(env):
    start("hist")
    env.drain()
    status, doc = call("GET", "/workflows/hist/history")
    assert status == 200
    assert [e["event_type"] for e in doc["events"]][:2] == ["WorkflowExecutionStarted",
                                                            "ActivityTaskScheduled"]
    first = doc["events"][0]
    assert {"event_id", "event_type", "timestamp"} <= set(first) and first["event_id"] == 1
    assert doc["workflow_id"] == "hist" and doc["tasks"]
    check_document(order.app, doc)  # what `ostinato replay` does with a saved response
    # a run named by id; an unknown run is a 404
    assert call("GET", "/workflows/hist/history", query={"run_id": doc["run_id"]})[1] == doc
    assert_error(call("GET", "/workflows/hist/history", query={"run_id": "nope"}), 404,
                 "workflow_not_found")


def test_cancel_and_terminate(env):
    start("cancel-me")
    start("terminate-me")
    env.drain()
    assert call("POST", "/workflows/cancel-me/cancel", {"reason": "changed my mind"}) == (
        202, {"result": None})
    assert call("POST", "/workflows/terminate-me/terminate") == (202, {"result": None})
    env.drain()
    assert call("GET", "/workflows/cancel-me")[1]["status"] == "CANCELLED"
    assert call("GET", "/workflows/terminate-me")[1]["status"] == "TERMINATED"
    assert event_types(env, "terminate-me")[-1] == "WorkflowExecutionTerminated"


def test_list_filters_and_pages(env):
    for wid in ("list-a", "list-b", "list-c"):
        start(wid)
    env.drain()
    call("POST", "/workflows/list-b/terminate")
    env.drain()

    def ids(**query: Any) -> list[str]:
        found = call("GET", "/workflows", query=query)[1]["workflows"]
        return [w["workflow_id"] for w in found if w["workflow_id"].startswith("list-")]

    assert sorted(ids()) == ["list-a", "list-b", "list-c"]
    assert sorted(ids(status="RUNNING")) == ["list-a", "list-c"]
    assert ids(status="TERMINATED", workflow_type="order") == ["list-b"]
    assert ids(workflow_type="nope") == []
    # page through RUNNING one at a time: every run once, newest first
    seen: list[dict[str, Any]] = []
    token = None
    while True:
        query = {"status": "RUNNING", "limit": 1, **({"next_token": token} if token else {})}
        status, page = call("GET", "/workflows", query=query)
        assert status == 200 and len(page["workflows"]) <= 1
        seen += page["workflows"]
        token = page["next_token"]
        if not token:
            break
    wids = [w["workflow_id"] for w in seen]
    assert len(wids) == len(set(wids)) and {"list-a", "list-c"} <= set(wids)
    assert "list-b" not in wids and set(seen[0]) == DESCRIBE_KEYS
    starts = [w["start_time"] for w in seen]
    assert starts == sorted(starts, reverse=True)


def test_use_existing_returns_the_running_run(env):
    first = start("existing")[1]
    assert start("existing", id_conflict_policy="use_existing") == (201, first)


def test_base64_encoded_bodies_are_read(env):
    status, started = call("POST", "/workflows", raw=json.dumps(
        {"workflow_type": "order", "args": [["a"]], "id": "b64"}), base64_body=True)
    assert (status, started["workflow_id"]) == (201, "b64")


def test_openapi_document_describes_every_route(env):
    status, doc = call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/workflows", "/workflows/{workflow_id}", "/workflows/{workflow_id}/history",
        "/workflows/{workflow_id}/signals/{name}", "/workflows/{workflow_id}/queries/{name}",
        "/workflows/{workflow_id}/updates/{name}", "/workflows/{workflow_id}/update-with-start",
        "/workflows/{workflow_id}/cancel",
        "/workflows/{workflow_id}/terminate", "/callbacks/{token}",
        "/schedules", "/schedules/{name}", "/events"}
    start_op = doc["paths"]["/workflows"]["post"]
    assert set(start_op["responses"]) == {"201", "400", "404", "409", "413", "500"}
    update_op = doc["paths"]["/workflows/{workflow_id}/updates/{name}"]["post"]
    assert set(update_op["responses"]) == {"200", "400", "404", "409", "413", "422", "500",
                                           "504"}
    assert set(doc["paths"]["/callbacks/{token}"]["post"]["responses"]) == {
        "202", "400", "404", "409", "413", "500"}
    schema = doc["components"]["schemas"]["StartWorkflowRequest"]
    assert schema["required"] == ["workflow_type"]
    assert schema["properties"]["args"]["type"] == "array"


# -- bad input: a clear 4xx, nothing half-written -----------------------------------------------
def test_malformed_json(env, heads):
    assert_error(call("POST", "/workflows", raw='{"workflow_type": "order", "args": ['), 400,
                 "malformed_json", "not valid JSON")
    assert_nothing_written(env, heads)


@pytest.mark.parametrize(("body", "words"), [
    ({"args": [["a"]]}, ["workflow_type", "required"]),
    ({"workflow_type": "order", "args": {"items": ["a"]}}, ["args", "list"]),
    ({"workflow_type": "order", "args": "a"}, ["args", "list"]),
    ({"workflow_type": 7}, ["workflow_type"]),
    ({"workflow_type": "order", "arguments": []}, ["arguments", "not permitted"]),
    ({"workflow_type": "order", "id": "has space"}, ["id"]),
    ({"workflow_type": "order", "id": "x" * 129}, ["id"]),
    ({"workflow_type": "order", "id_conflict_policy": "replace"}, ["id_conflict_policy"]),
    ([], ["body"]),
])
def test_invalid_start_requests(env, heads, body, words):
    assert_error(call("POST", "/workflows", body), 400, "invalid_request", *words)
    assert_nothing_written(env, heads)


def test_unknown_workflow_type(env, heads):
    assert_error(call("POST", "/workflows", {"workflow_type": "refund", "args": []}), 404,
                 "unknown_workflow_type", "refund")
    assert_nothing_written(env, heads)


def test_oversized_body_is_refused_before_anything_runs(env, heads):
    assert_error(start("big", items=["x" * (5 * 1024 * 1024)]), 413, "payload_too_large",
                 "bytes")
    assert_nothing_written(env, heads)


def test_oversized_arguments_are_refused_before_anything_is_written(env, heads):
    # payloads up to 50 MiB go through the payload bucket, but an HTTP API request cannot
    # carry them (a Lambda event is at most 6 MB): refused as a body, before anything runs
    args = ["x" * (4 * 1024 * 1024)]
    assert_error(start("big-args", items=args), 413, "payload_too_large", "over the limit")
    assert_nothing_written(env, heads)


def test_oversized_signal_is_refused_and_not_delivered(env):
    start("big-signal")
    env.drain()
    before = event_types(env, "big-signal")
    assert_error(call("POST", "/workflows/big-signal/signals/approve",
                      {"args": ["x" * (5 * 1024 * 1024)]}), 413, "payload_too_large")
    env.drain()
    assert event_types(env, "big-signal") == before


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/workflows/ghost"),
    ("GET", "/workflows/ghost/history"),
    ("POST", "/workflows/ghost/signals/approve"),
    ("POST", "/workflows/ghost/queries/progress"),
    ("POST", "/workflows/ghost/updates/add"),
    ("POST", "/workflows/ghost/cancel"),
    ("POST", "/workflows/ghost/terminate"),
])
def test_unknown_workflow_id(env, heads, method, path):
    assert_error(call(method, path), 404, "workflow_not_found", "ghost")
    assert_nothing_written(env, heads)


def test_signal_cancel_terminate_of_a_closed_workflow(env):
    start("closed")
    env.drain()
    call("POST", "/workflows/closed/terminate")
    env.drain()
    before = event_types(env, "closed")
    for path, body in (("signals/approve", {"args": ["ann"]}), ("cancel", None),
                       ("terminate", None)):
        assert_error(call("POST", f"/workflows/closed/{path}", body), 409, "workflow_closed",
                     "TERMINATED")
    env.drain()
    assert event_types(env, "closed") == before


def test_duplicate_start(env):
    first = start("dup")[1]
    env.drain()
    before = event_types(env, "dup")
    assert_error(start("dup", items=["pear"]), 409, "workflow_already_started", "dup")
    env.drain()
    assert call("GET", "/workflows/dup")[1]["run_id"] == first["run_id"]
    assert event_types(env, "dup") == before  # the refused start's wake-up was dropped


def test_unknown_query_is_rejected(env):
    start("q")
    env.drain()
    assert_error(call("POST", "/workflows/q/queries/nope"), 400, "query_rejected", "nope")


@pytest.mark.parametrize("query", [{"status": "SLEEPING"}, {"limit": 0}, {"limit": "ten"},
                                   {"next_token": "not-a-token"}])
def test_bad_list_parameters(env, query):
    assert_error(call("GET", "/workflows", query=query), 400, "invalid_request")


def test_signal_args_must_be_a_list(env):
    start("sig-args")
    env.drain()
    before = event_types(env, "sig-args")
    assert_error(call("POST", "/workflows/sig-args/signals/approve", {"args": "ann"}), 400,
                 "invalid_request", "args")
    env.drain()
    assert event_types(env, "sig-args") == before


def test_unknown_route(env):
    assert_error(call("DELETE", "/workflows/happy"), 404, "route_not_found")


# -- updates ----------------------------------------------------------------------------------
def start_type(workflow_type: str, wid: str, *args: Any) -> None:
    assert call("POST", "/workflows", {"workflow_type": workflow_type, "args": list(args),
                                       "id": wid})[0] == 201


def test_update_answers_the_handler_result(env):
    start_type("cart", "up-ok")
    env.drain()
    assert call("POST", "/workflows/up-ok/updates/add", {"args": ["apple"]}) == (
        200, {"result": {"items": ["apple"], "total": 5}})
    assert call("POST", "/workflows/up-ok/queries/items")[1] == {"result": ["apple"]}
    assert event_types(env, "up-ok").count("WorkflowExecutionUpdateCompleted") == 1


def test_rejected_update_is_400_and_writes_nothing(env):
    start_type("cart", "up-rej")
    env.drain()
    call("POST", "/workflows/up-rej/updates/add", {"args": ["pear"]})
    env.drain()
    before = event_types(env, "up-rej")
    assert_error(call("POST", "/workflows/up-rej/updates/add", {"args": ["pear"]}), 400,
                 "update_rejected", "already in the cart")
    assert_error(call("POST", "/workflows/up-rej/updates/nope"), 400, "update_rejected",
                 "unknown update 'nope'")
    assert_error(call("POST", "/workflows/up-rej/updates/add", {"args": "pear"}), 400,
                 "invalid_request", "args")
    env.drain()
    assert event_types(env, "up-rej") == before


def test_failing_update_handler_is_422(env):
    start_type("cart", "up-fail")
    env.drain()
    assert_error(call("POST", "/workflows/up-fail/updates/remove", {"args": ["kiwi"]}), 422,
                 "update_failed", "remove")
    env.drain()
    assert call("GET", "/workflows/up-fail")[1]["status"] == "RUNNING"  # the workflow goes on


def test_update_of_a_closed_workflow_is_409(env):
    start_type("cart", "up-closed")
    env.drain()
    call("POST", "/workflows/up-closed/terminate")
    env.drain()
    assert_error(call("POST", "/workflows/up-closed/updates/add", {"args": ["fig"]}), 409,
                 "workflow_closed", "TERMINATED")


def test_update_that_does_not_finish_is_504(env):
    start_type("stuck", "up-stuck")
    env.drain()
    assert_error(call("POST", "/workflows/up-stuck/updates/wait"), 504, "update_timeout",
                 "'wait'", "did not finish")


# -- callbacks --------------------------------------------------------------------------------
def expense(env: Any, wid: str) -> str:
    """Start an expense claim; its callback token (what the approver would be mailed)."""
    start_type("expense", wid, {"who": "ann", "amount": 42})
    env.drain()
    status, answer = call("POST", f"/workflows/{wid}/queries/link")
    assert status == 200 and answer["result"]
    return str(answer["result"])


def test_callback_success_heartbeat_and_a_second_completion(env):
    token = expense(env, "cb-ok")
    assert call("POST", f"/callbacks/{token}", {"status": "heartbeat"}) == (
        202, {"result": None})
    assert call("POST", f"/callbacks/{token}",
                {"status": "success", "result": {"approved": True, "by": "bob"}}) == (
        202, {"result": None})
    assert_error(call("POST", f"/callbacks/{token}", {"status": "success", "result": {}}), 409,
                 "callback_closed", "already settled")
    assert env.client.get_workflow_handle("cb-ok").result()["approved_by"] == "bob"
    assert "CallbackCompleted" in event_types(env, "cb-ok")


@pytest.mark.parametrize("error", ["over budget", {"message": "over budget", "type": "Budget"}])
def test_callback_failure(env, error):
    wid = f"cb-fail-{type(error).__name__}"
    token = expense(env, wid)
    assert call("POST", f"/callbacks/{token}", {"status": "failure", "error": error}) == (
        202, {"result": None})
    outcome = env.client.get_workflow_handle(wid).result()
    assert outcome["paid"] is False and "over budget" in outcome["reason"]
    assert "CallbackFailed" in event_types(env, wid)


def test_callback_of_a_closed_workflow_is_409(env):
    token = expense(env, "cb-closed")
    call("POST", "/workflows/cb-closed/terminate")
    env.drain()
    assert_error(call("POST", f"/callbacks/{token}", {"status": "success"}), 409,
                 "workflow_closed", "TERMINATED")


def test_unknown_or_bad_callback_requests(env):
    token = expense(env, "cb-bad")
    before = event_types(env, "cb-bad")
    assert_error(call("POST", "/callbacks/not-a-token", {"status": "success"}), 404,
                 "callback_not_found", "malformed")
    assert_error(call("POST", f"/callbacks/{token[:-4]}xxxx", {"status": "success"}), 404,
                 "callback_not_found")
    assert_error(call("POST", f"/callbacks/{token}", {"status": "done"}), 400,
                 "invalid_request", "status")
    assert_error(call("POST", f"/callbacks/{token}", {"status": "failure"}), 400,
                 "invalid_request", "error")
    assert_error(call("POST", f"/callbacks/{token}"), 400, "invalid_request")
    assert_error(call("POST", f"/callbacks/{token}",
                      {"status": "success", "result": "x" * (5 * 1024 * 1024)}), 413,
                 "payload_too_large")
    env.drain()
    assert event_types(env, "cb-bad") == before
    assert call("GET", "/workflows/cb-bad")[1]["status"] == "RUNNING"


# -- input is never answered with a 5xx ---------------------------------------------------------
BODY_ROUTES = ["/workflows", "/workflows/ghost/signals/approve",
               "/workflows/ghost/queries/progress", "/workflows/ghost/updates/add",
               "/workflows/ghost/cancel",
               "/workflows/ghost/terminate", "/callbacks/not-a-token", "/schedules", "/events"]


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_a_body_that_is_not_utf8_is_400(env, heads, path):
    # API Gateway sends such a body base64-encoded with isBase64Encoded: true
    assert_error(call("POST", path, raw=b"\xff\xfe"), 400, "malformed_json", "not UTF-8")
    assert_nothing_written(env, heads)


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("raw", ["[]", "5", '"text"', "true", '{"args": {}, "x": 1}', "{"])
def test_a_body_of_the_wrong_shape_is_400(env, path, raw):
    status, answer = call("POST", path, raw=raw)
    assert status == 400 and answer["error"]["code"] in ("invalid_request", "malformed_json")


def test_an_id_with_reserved_url_characters_is_one_path_parameter(env):
    wid = "a:b?c#d%e"  # API Gateway hands the routes the path decoded
    assert start(wid)[0] == 201
    env.drain()
    assert call("GET", f"/workflows/{wid}")[1]["workflow_id"] == wid
    assert call("GET", f"/workflows/{wid}/history")[1]["workflow_id"] == wid
    assert call("POST", f"/workflows/{wid}/signals/approve", {"args": ["ann"]})[0] == 202
    env.drain()
    assert "WorkflowExecutionSignaled" in event_types(env, wid)
    # a decoded path is not decoded again: `%41` is three characters of an id
    assert_error(call("GET", "/workflows/x%41"), 404, "workflow_not_found", "x%41")
    assert_error(call("GET", "/workflows/" + "x" * 129), 400, "invalid_request", "workflow_id")


@pytest.mark.parametrize("key", [{"a": {"S": "b"}}, {"pk": {"S": "W#x"}}, {"pk": {"N": "1"}},
                                 [1, 2], {"pk": {"S": 5}}, {"pk": {"N": "one"}}])
@pytest.mark.parametrize("query", [{}, {"status": "RUNNING"}, {"workflow_type": "order"}])
def test_a_made_up_next_token_is_400(env, key, query):
    token = base64.urlsafe_b64encode(json.dumps(key).encode()).decode()
    status, answer = call("GET", "/workflows", query={**query, "next_token": token})
    assert status == 400 and "token" in answer["error"]["message"]
    assert answer["error"]["code"] in ("invalid_request", "invalid_page_token")


@pytest.mark.parametrize("when, status", [
    ("2026-01-01T00:00:00Z", 200), ("2026-01-01t00:00:00+05:30", 200), ("0.5", 400),
    ("1767225600", 400), ("2026-01-01T00:00:00", 400), ("2026-02-30T00:00:00Z", 400)])
def test_start_times_are_rfc3339_date_times_as_documented(env, when, status):
    for name in ("started_after", "started_before"):
        assert call("GET", "/workflows", query={name: when})[0] == status, (name, when)


@pytest.mark.parametrize("where", [["w", "", 1], ["w", "x" * 3000, 1], ["w", "0" * 32, True]])
def test_a_made_up_callback_token_is_404(env, where):
    encoded = base64.urlsafe_b64encode(json.dumps(where).encode()).decode().rstrip("=")
    assert_error(call("POST", f"/callbacks/{encoded}.{'0' * 32}", {"status": "success"}), 404,
                 "callback_not_found")


@pytest.mark.parametrize("extra, words", [
    ({}, ["exactly one of cron and rate"]),
    ({"cron": "0 3 * * ? *", "rate": "5 minutes"}, ["exactly one of cron and rate"]),
    ({"cron": "5-3 * * * ? *"}, ["'5-3' runs backwards"]),
    ({"cron": "0 3 * * * *"}, ["exactly one of day-of-month and day-of-week"]),
    ({"cron": "0  3 * * ? *"}, ["as the document's pattern does"]),  # parses, not documented
    ({"rate": "0 minutes"}, ["rate '0 minutes'"]),
    ({"rate": "5 minutes", "timezone": "Mars/Olympus_Mons"}, ["unknown time zone"]),
])
def test_schedule_requests_the_document_calls_invalid_are_400(env, extra, words):
    body = {"name": "nightly", "workflow_type": "order", **extra}
    assert_error(call("POST", "/schedules", body), 400, "invalid_schedule", *words)


def test_a_schedule_name_no_schedule_can_have_is_404(env):
    assert_error(call("DELETE", "/schedules/no!such:name"), 404, "schedule_not_found")


def test_events_go_to_the_default_bus_only(env):
    entry = {"Source": "shop", "DetailType": "OrderPlaced", "EventBusName": "elsewhere"}
    assert_error(call("POST", "/events", {"Entries": [entry]}), 400, "invalid_request",
                 "EventBusName")


def test_openapi_document_states_the_rules_the_routes_enforce(env):
    doc = call("GET", "/openapi.json")[1]
    schemas = doc["components"]["schemas"]
    failure, other = schemas["CallbackRequest"]["oneOf"]
    assert failure["required"] == ["status", "error"] and other["properties"]["status"]["enum"]
    schedule = schemas["CreateScheduleRequest"]
    assert [branch["required"] for branch in schedule["oneOf"]] == [["cron"], ["rate"]]
    cron = next(b for b in schedule["properties"]["cron"]["anyOf"] if b.get("type") == "string")
    for good in ("0 3 * * ? *", "cron(*/5 9-17 ? * MON-FRI *)", "0 0 L * ? 2026"):
        assert re.search(cron["pattern"], good), good
    for bad in ("5-3 * * * ? *", "0 3 * * * *", "60 3 * * ? *", "0 3 * * ?"):
        assert not re.search(cron["pattern"], bad), bad
    assert "Europe/Paris" in schedule["properties"]["timezone"]["enum"]
    list_op = doc["paths"]["/workflows"]["get"]
    token = next(p for p in list_op["parameters"] if p["name"] == "next_token")
    assert token["schema"]["anyOf"][0]["pattern"] and "400" in list_op["responses"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            answers = set(operation["responses"])
            assert "500" in answers, (method, path)
            if "{" in path:
                assert {"400", "404"} <= answers, (method, path)
            if "requestBody" in operation:
                assert {"400", "413"} <= answers, (method, path)


@settings(max_examples=300, deadline=None, database=None)
@given(strategies.from_regex(models.cron_pattern(), fullmatch=True))
def test_every_cron_expression_the_document_allows_parses(expression):
    cron.parse_cron(expression)


@settings(max_examples=100, deadline=None, database=None)
@given(strategies.from_regex(models.RATE_PATTERN, fullmatch=True))
def test_every_rate_the_document_allows_parses(expression):
    cron.parse_rate(expression)
