"""Update-with-start over HTTP: `POST /workflows/{id}/update-with-start` through the api handler."""

from __future__ import annotations

from typing import Any

import pytest

from ostinato.testing import WorkflowEnvironment
from tests.test_api import APP, assert_error, assert_nothing_written, call, event_types, head_count

ROUTE = "/workflows/{}/update-with-start"


@pytest.fixture(scope="module")
def shared_env():
    with WorkflowEnvironment(APP) as env:
        yield env


@pytest.fixture
def env(shared_env):
    shared_env.drain()
    return shared_env


def uws(wid: str, update: str = "add", update_args: list[Any] | None = None,
        **extra: Any) -> tuple[int, Any]:
    return call("POST", ROUTE.format(wid), {"workflow_type": "cart", "update": update,
                                            "update_args": update_args or [], **extra})


def test_starts_the_workflow_and_answers_the_update(env):
    status, answer = uws("uws-1", update_args=["fig"])
    assert status == 200 and set(answer) == {"workflow_id", "run_id", "result"}
    assert answer["workflow_id"] == "uws-1"
    assert answer["result"] == {"items": ["fig"], "total": 3}
    events = event_types(env, "uws-1")
    assert events[:2] == ["WorkflowExecutionStarted", "WorkflowExecutionUpdateAccepted"]
    described = call("GET", "/workflows/uws-1")[1]
    assert (described["status"], described["run_id"]) == ("RUNNING", answer["run_id"])

    # again: attaches to the running run (use_existing, the default) and updates it
    again = uws("uws-1", update_args=["tea"])
    assert again == (200, {"workflow_id": "uws-1", "run_id": answer["run_id"],
                           "result": {"items": ["fig", "tea"], "total": 6}})


def test_fail_policy_refuses_a_running_id_and_updates_nothing(env):
    uws("uws-2", update_args=["fig"])
    env.drain()
    before = event_types(env, "uws-2")
    assert_error(uws("uws-2", update_args=["kiwi"], id_conflict_policy="fail"), 409,
                 "workflow_already_started", "uws-2")
    env.drain()
    assert event_types(env, "uws-2") == before


def test_a_rejected_update_is_400_and_the_workflow_stays_started(env):
    assert_error(uws("uws-3", update_args=[""]), 400, "update_rejected", "must not be empty",
                 "is started")
    assert_error(uws("uws-3", update="nope"), 400, "update_rejected", "unknown update 'nope'")
    assert call("GET", "/workflows/uws-3")[1]["status"] == "RUNNING"
    assert "WorkflowExecutionUpdateAccepted" not in event_types(env, "uws-3")


def test_a_failing_update_is_422_and_one_that_does_not_finish_504(env):
    assert_error(uws("uws-4", update="remove", update_args=["ghost"]), 422, "update_failed",
                 "remove")
    assert call("GET", "/workflows/uws-4")[1]["status"] == "RUNNING"
    assert_error(call("POST", ROUTE.format("uws-5"), {"workflow_type": "stuck",
                                                      "update": "wait"}),
                 504, "update_timeout", "'wait'", "did not finish")


@pytest.mark.parametrize(("body", "words"), [
    ({"update": "add"}, ["workflow_type"]),
    ({"workflow_type": "cart"}, ["update"]),
    ({"workflow_type": "cart", "update": ""}, ["update"]),
    ({"workflow_type": "cart", "update": "add", "update_args": "fig"}, ["update_args"]),
    ({"workflow_type": "cart", "update": "add", "id_conflict_policy": "terminate_existing"},
     ["id_conflict_policy"]),
    ({"workflow_type": "cart", "update": "add", "extra": 1}, ["extra"]),
])
def test_malformed_requests_are_400_and_write_nothing(env, body, words):
    heads = head_count(env)
    assert_error(call("POST", ROUTE.format("uws-bad"), body), 400, "invalid_request", *words)
    assert_nothing_written(env, heads)


@pytest.mark.parametrize("wid", ["a b", "caf\u00e9", "x" * 129])
def test_an_id_no_workflow_can_have_is_400_and_writes_nothing(env, wid):
    heads = head_count(env)
    assert_error(uws(wid, update_args=["x"]), 400, "invalid_request", "workflow_id")
    assert_nothing_written(env, heads)


def test_unknown_type_is_404_and_too_large_is_413_before_anything_is_written(env):
    heads = head_count(env)
    assert_error(call("POST", ROUTE.format("uws-x"), {"workflow_type": "nope", "update": "add"}),
                 404, "unknown_workflow_type", "nope")
    assert_error(uws("uws-x", update_args=["x" * (5 * 1024 * 1024)]), 413, "payload_too_large",
                 "request body")  # over the API's 4 MiB body limit (the client takes 50 MiB)
    assert_nothing_written(env, heads)


def test_the_document_describes_the_route(env):
    doc = call("GET", "/openapi.json")[1]
    operation = doc["paths"]["/workflows/{workflow_id}/update-with-start"]["post"]
    assert set(operation["responses"]) == {"200", "400", "404", "409", "413", "422", "500",
                                           "504"}
    schema = doc["components"]["schemas"]["UpdateWithStartRequest"]
    assert sorted(schema["required"]) == ["update", "workflow_type"]
    assert schema["properties"]["id_conflict_policy"]["enum"] == ["fail", "use_existing"]
    assert schema["properties"]["update"]["minLength"] == 1
