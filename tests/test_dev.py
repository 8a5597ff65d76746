"""`ostinato dev` end to end: a subprocess, driven only over HTTP, on the real clock."""

from __future__ import annotations

import http.client
import json
import socket
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from ostinato._cli.apiclient import segment
from tests.apps.devserver import DevServer, running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    yield from running_server(tmp_path_factory, "dev")


def history_types(dev: DevServer, wid: str) -> list[str]:
    status, doc = dev.http("GET", f"/workflows/{wid}/history")
    assert status == 200
    return [e["event_type"] for e in doc["events"]]


def test_prints_its_endpoints_and_serves_openapi(dev):
    log = dev.log()
    assert f"HTTP API   {dev.url}" in log and "/openapi.json" in log
    assert "AWS        http://127.0.0.1:" in log
    assert "WorkflowTaskFunction <- ostinato-WorkflowTaskQueue.fifo" in log
    status, doc = dev.http("GET", "/openapi.json")
    assert status == 200 and "/workflows/{workflow_id}/signals/{name}" in doc["paths"]


def test_start_query_signal_complete(dev):
    status, started = dev.http("POST", "/workflows", {"workflow_type": "approval",
                                                      "args": [["a", "b"]], "id": "e2e-1"})
    assert status == 201 and started["workflow_id"] == "e2e-1"
    dev.wait_for("e2e-1", lambda d: d["custom_status"] == "awaiting approval")

    assert dev.http("POST", "/workflows/e2e-1/queries/progress") == (
        200, {"result": {"approved": [], "items": ["a", "b"]}})
    assert dev.http("POST", "/workflows/e2e-1/signals/approve", {"args": ["ann"]})[0] == 202

    described = dev.wait_for("e2e-1", lambda d: d["status"] != "RUNNING")
    assert described["status"] == "COMPLETED"
    assert described["result"] == {"shouted": ["A", "B"], "approved_by": "ann"}
    assert described["run_id"] == started["run_id"]
    assert history_types(dev, "e2e-1") == [
        "WorkflowExecutionStarted", "ActivityTaskScheduled", "ActivityTaskCompleted",
        "ActivityTaskScheduled", "ActivityTaskCompleted", "WorkflowExecutionSignaled",
        "WorkflowExecutionCompleted"]
    # one readable log line per event
    assert "e2e-1  #1 WorkflowExecutionStarted  approval([\"a\",\"b\"])" in dev.log()
    assert "e2e-1  #6 WorkflowExecutionSignaled  approve(\"ann\")" in dev.log()


def test_a_real_clock_timer_fires_within_its_precision(dev):
    began = time.monotonic()
    assert dev.http("POST", "/workflows", {"workflow_type": "nap", "args": [2],
                                           "id": "e2e-nap"})[0] == 201
    described = dev.wait_for("e2e-nap", lambda d: d["status"] != "RUNNING", timeout=15)
    waited = time.monotonic() - began

    assert described["result"] == "slept 2s"
    doc = dev.http("GET", "/workflows/e2e-nap/history")[1]
    at = {e["event_type"]: datetime.fromisoformat(e["timestamp"]) for e in doc["events"]}
    fired_after = (at["TimerFired"] - at["TimerStarted"]).total_seconds()
    # SQS delays are whole seconds and pollers wake when a message is due: within a second
    assert 2.0 <= fired_after < 3.0, fired_after
    assert 2.0 <= waited < 5.0, waited


def test_cancel_and_terminate(dev):
    for wid in ("e2e-cancel", "e2e-terminate"):
        assert dev.http("POST", "/workflows", {"workflow_type": "nap", "args": [600],
                                               "id": wid})[0] == 201
        dev.wait_for(wid, lambda d: d["status"] == "RUNNING")
    while "TimerStarted" not in history_types(dev, "e2e-cancel"):
        time.sleep(0.05)

    assert dev.http("POST", "/workflows/e2e-cancel/cancel", {"reason": "no"})[0] == 202
    assert dev.http("POST", "/workflows/e2e-terminate/terminate", {"reason": "bye"})[0] == 202

    assert dev.wait_for("e2e-cancel", lambda d: d["status"] != "RUNNING")["status"] == (
        "CANCELLED")
    terminated = dev.wait_for("e2e-terminate", lambda d: d["status"] != "RUNNING")
    assert terminated["status"] == "TERMINATED" and terminated["error"]["message"] == "bye"


def test_list_with_filters(dev):
    for wid, seconds in (("e2e-list-done", 0), ("e2e-list-open", 600)):
        dev.http("POST", "/workflows", {"workflow_type": "nap", "args": [seconds], "id": wid})
    dev.wait_for("e2e-list-done", lambda d: d["status"] == "COMPLETED")

    def ids(query: str) -> set[str]:
        status, page = dev.http("GET", f"/workflows?{query}")
        assert status == 200
        return {w["workflow_id"] for w in page["workflows"]}

    assert "e2e-list-done" in ids("status=COMPLETED&workflow_type=nap")
    assert "e2e-list-open" not in ids("status=COMPLETED&workflow_type=nap")
    assert "e2e-list-open" in ids("status=RUNNING")
    assert not ids("status=RUNNING&workflow_type=approval") & {"e2e-list-done",
                                                               "e2e-list-open"}
    page = dev.http("GET", "/workflows?workflow_type=nap&limit=1")[1]
    assert len(page["workflows"]) == 1 and page["next_token"]


def test_large_payloads_go_through_the_local_payload_bucket(dev):
    import base64
    import random

    big = base64.b64encode(random.Random(11).randbytes(300_000)).decode()  # 400 KB, over 128 KiB
    status, _ = dev.http("POST", "/workflows", {"workflow_type": "approval", "args": [[big]],
                                                "id": "e2e-big"})
    assert status == 201
    dev.wait_for("e2e-big", lambda d: d["custom_status"] == "awaiting approval")
    assert dev.http("POST", "/workflows/e2e-big/signals/approve", {"args": [big]})[0] == 202
    described = dev.wait_for("e2e-big", lambda d: d["status"] != "RUNNING")
    assert described["result"] == {"shouted": [big.upper()], "approved_by": big}


def test_bad_input_over_http(dev):
    status, body = dev.http("POST", "/workflows", raw=b'{"workflow_type": ')
    assert (status, body["error"]["code"]) == (400, "malformed_json")
    status, body = dev.http("POST", "/workflows", {"workflow_type": "approval", "args": "a"})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    status, body = dev.http("POST", "/workflows", {"workflow_type": "nope", "id": "e2e-bad"})
    assert (status, body["error"]["code"]) == (404, "unknown_workflow_type")
    status, body = dev.http("POST", "/workflows", {"workflow_type": "nap", "id": "e2e-bad",
                                                   "args": ["x" * 5_000_000]})
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert dev.http("GET", "/workflows/e2e-bad")[0] == 404  # nothing was written
    dev.http("POST", "/workflows", {"workflow_type": "nap", "args": [600], "id": "e2e-dup"})
    status, body = dev.http("POST", "/workflows", {"workflow_type": "nap", "args": [1],
                                                   "id": "e2e-dup"})
    assert (status, body["error"]["code"]) == (409, "workflow_already_started")
    dev.wait_for("e2e-1", lambda d: d["status"] == "COMPLETED")
    status, body = dev.http("POST", "/workflows/e2e-1/signals/approve", {"args": ["x"]})
    assert (status, body["error"]["code"]) == (409, "workflow_closed")


BODY_ROUTES = ["/workflows", "/workflows/e2e-x/signals/s", "/workflows/e2e-x/queries/q",
               "/workflows/e2e-x/updates/u", "/workflows/e2e-x/cancel",
               "/workflows/e2e-x/terminate", "/callbacks/not-a-token", "/schedules", "/events"]


def test_a_body_that_is_not_utf8_is_400_over_http(dev):
    for path in BODY_ROUTES:
        status, body = dev.http("POST", path, raw=b"\xff\xfe")
        assert (status, body["error"]["code"]) == (400, "malformed_json"), path


def raw_request(dev: DevServer, method: str, path: str) -> tuple[int, dict[str, str], Any]:
    connection = http.client.HTTPConnection(urlsplit(dev.url).netloc, timeout=10)
    try:
        connection.request(method, path)
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), json.loads(answer.read() or b"null")
    finally:
        connection.close()


@pytest.mark.parametrize("method, path, allowed", [
    ("TRACE", "/workflows", "GET, POST"), ("PUT", "/workflows/e2e-1", "GET"),
    ("DELETE", "/workflows/e2e-1/signals/approve", "POST"), ("PATCH", "/schedules/s", "DELETE"),
    ("BREW", "/openapi.json", "GET"),
])
def test_an_undeclared_method_is_405_naming_the_allowed_ones(dev, method, path, allowed):
    status, headers, body = raw_request(dev, method, path)
    assert (status, headers["Allow"], body["error"]["code"]) == (405, allowed,
                                                                 "method_not_allowed")


def test_a_path_no_route_has_is_404(dev):
    for method, path in (("GET", "/nope"), ("TRACE", "/workflows/a/b"), ("GET", "/workflows/")):
        status, _headers, body = raw_request(dev, method, path)
        assert (status, body["error"]["code"]) == (404, "route_not_found"), (method, path)


def test_an_id_with_reserved_url_characters_round_trips(dev):
    from tests.test_cli import ostinato

    wid = "a:b?c#d%e"  # every character the id pattern allows that a URL treats specially
    assert dev.http("POST", "/workflows", {"workflow_type": "approval", "args": [["x"]],
                                           "id": wid})[0] == 201
    path = f"/workflows/{segment(wid)}"  # `%` and `?` encoded twice, as API Gateway needs
    described = dev.wait_for(segment(wid), lambda d: d["custom_status"] == "awaiting approval")
    assert described["workflow_id"] == wid
    assert dev.http("POST", f"{path}/queries/progress")[1]["result"]["items"] == ["x"]
    # the CLI addresses it the same way
    via_cli = json.loads(ostinato("workflow", "describe", wid, "--json", api_url=dev.url).stdout)
    assert (via_cli["workflow_id"], via_cli["run_id"]) == (wid, described["run_id"])
    ostinato("workflow", "signal", wid, "approve", "ann", api_url=dev.url)
    assert dev.wait_for(segment(wid), lambda d: d["status"] != "RUNNING")["result"] == {
        "shouted": ["X"], "approved_by": "ann"}
    history = json.loads(ostinato("workflow", "history", wid, "--json", api_url=dev.url).stdout)
    assert history["workflow_id"] == wid and history == dev.http("GET", f"{path}/history")[1]
    assert "WorkflowExecutionSignaled" in [e["event_type"] for e in history["events"]]
    # encoded once, the `?` would be cut off by API Gateway: refused here rather than misrouted
    status, body = dev.http("GET", f"/workflows/{quote(wid, safe='')}")
    assert (status, body["error"]["code"]) == (400, "malformed_path")


def test_stops_cleanly_on_sigterm(dev):
    port = urlsplit(dev.url).port
    assert dev.stop() == 0
    assert dev.log().rstrip().endswith("stopped")
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


@pytest.mark.dynamodb_local
def test_dynamodb_local_keeps_the_table(tmp_path):
    from ostinato._local.dev import DynamoDBLocal

    try:
        DynamoDBLocal.find()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    server = DevServer(tmp_path / "dev.log", "tests.apps.devapp:app", "--dynamodb-local")
    try:
        server.start()
        assert "in DynamoDB Local http://127.0.0.1:" in server.log()
        assert server.http("POST", "/workflows", {"workflow_type": "nap", "args": [0],
                                                  "id": "ddb"})[0] == 201
        assert server.wait_for("ddb", lambda d: d["status"] == "COMPLETED")["result"] == (
            "slept 0s")
    finally:
        assert server.stop() == 0

