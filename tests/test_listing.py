"""Listing at scale: sharded indexes merged newest first, never a scan, tokens checked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pynamodb.connection.base import Connection

import ostinato
from ostinato._aws.store import LIST_SHARDS, shard_of
from ostinato._core.errors import InvalidPageTokenError
from tests.apps import core

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def env(make_env, monkeypatch):
    def no_scan(*args, **kwargs):
        raise AssertionError("listing scanned the table")

    monkeypatch.setattr(Connection, "scan", no_scan)
    return make_env(core.app, start_time=T0)


def start_many(env, n: int, gap: float = 10.0) -> list[str]:
    """`n` workflows started `gap` seconds apart (ids spread over every shard)."""
    ids = []
    for i in range(n):
        wid = f"w{i:03d}"
        env.client.start_workflow(core.waiter if i % 3 else core.sequential,
                                  3600 if i % 3 else 1, id=wid)
        ids.append(wid)
        env.clock.advance_to(env.clock() + gap)
    env.drain()
    return ids


def api_get(env, path: str, query: dict[str, str]) -> dict:
    """GET `path` through the api handler, as API Gateway would deliver it."""
    from ostinato._api import routes
    from ostinato._local.emulator import LambdaContext

    event = json.loads(Path("events/api_start_workflow.json").read_text())
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = "GET"
    event["body"], event["isBase64Encoded"] = None, False
    event["queryStringParameters"] = query or None
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    return routes.handle(event, LambdaContext("ApiFunction", aws_request_id="r"), env.client)


def test_pages_merge_every_shard_newest_first_each_workflow_once(env):
    ids = start_many(env, 40)
    assert len({shard_of(w) for w in ids}) == LIST_SHARDS  # the test reaches every shard
    listed = [d.workflow_id for d in env.client.list_workflows(page_size=7)]
    assert listed == list(reversed(ids))  # newest first, none lost, none twice
    page, token = env.client.list_page(None, None, 40)
    assert [d.workflow_id for d in page] == list(reversed(ids)) and token is None


def test_filters_by_status_type_and_start_time_use_the_indexes(env):
    ids = start_many(env, 24)
    running = {d.workflow_id for d in env.client.list_workflows(status="RUNNING", page_size=5)}
    completed = {d.workflow_id for d in env.client.list_workflows(status="COMPLETED")}
    assert running == {w for i, w in enumerate(ids) if i % 3}
    assert completed == {w for i, w in enumerate(ids) if i % 3 == 0}
    waiters = [d.workflow_id for d in env.client.list_workflows(workflow_type="waiter",
                                                                page_size=4)]
    assert waiters == [w for i, w in reversed(list(enumerate(ids))) if i % 3]
    both = {d.workflow_id for d in env.client.list_workflows(status="COMPLETED",
                                                             workflow_type="sequential")}
    assert both == completed
    window = [d.workflow_id for d in env.client.list_workflows(
        started_after=T0 + timedelta(seconds=50), started_before=T0 + timedelta(seconds=100),
        page_size=2)]
    assert window == ["w010", "w009", "w008", "w007", "w006", "w005"]


def test_a_forged_or_foreign_token_is_refused_with_a_typed_error(env):
    start_many(env, 12)
    _, token = env.client.list_page("RUNNING", None, 3)
    assert token is not None
    with pytest.raises(InvalidPageTokenError):  # a RUNNING token used for another listing
        env.client.list_page("COMPLETED", None, 3, token)
    forged = json.loads(json.dumps(token))
    first = next(k for k, v in forged["shards"].items() if v)
    forged["shards"][first]["pk"] = {"S": "nope"}
    with pytest.raises(InvalidPageTokenError):
        env.client.list_page("RUNNING", None, 3, forged)
    with pytest.raises(InvalidPageTokenError):
        env.client.list_page(None, None, 3, {"shards": {"99": None}})
    with pytest.raises(InvalidPageTokenError):  # out of the time window it is used with
        env.client.list_page("RUNNING", None, 3, token,
                             started_after=T0 + timedelta(days=1))


def test_the_http_api_answers_400_to_a_forged_token_and_pages_by_time(env):
    import base64

    start_many(env, 6)

    def get(query: dict[str, str]) -> dict:
        return api_get(env, "/workflows", query)

    forged = base64.urlsafe_b64encode(b'{"shards": {"0": {"pk": {"S": "x"}}}}').decode()
    answer = get({"next_token": forged})
    assert answer["statusCode"] == 400, answer
    assert json.loads(answer["body"])["error"]["code"] == "invalid_page_token"
    answer = get({"started_after": "2026-01-01T00:00:25Z", "limit": "2"})
    assert answer["statusCode"] == 200, answer
    body = json.loads(answer["body"])
    assert [w["workflow_id"] for w in body["workflows"]] == ["w005", "w004"]
    assert body["next_token"]


def test_a_listed_head_does_not_carry_the_arguments(env):
    env.client.start_workflow(core.waiter, 3600, id="argful")
    env.drain()
    (listed,) = env.client.list_workflows()
    assert listed.workflow_id == "argful" and listed.status == "RUNNING"
    assert ostinato.WorkflowDescription is type(listed)


def test_history_comes_in_pages_that_add_up_to_the_whole_run(env):
    handle = env.client.start_workflow(core.sequential, 12, id="paged")
    handle.result()
    whole = env.runtime.store.load_batches(handle.current_run_id())
    pages, after, calls = [], 0, 0
    while True:
        rid, batches, after = env.client.history_page("paged", after=after, max_bytes=600)
        calls += 1
        pages.extend(batches)
        if after is None:
            break
    assert rid == handle.current_run_id()
    assert [b.number for b in pages] == [b.number for b in whole]
    assert [b.events for b in pages] == [b.events for b in whole]
    assert 3 < calls <= len(whole)  # really in pages, each at least one batch
    _, everything, end = env.client.history_page("paged")  # default budget: one page
    assert len(everything) == len(whole) and end is None


def test_the_history_route_pages_and_the_cli_puts_the_document_together(env, monkeypatch):
    from ostinato._client import client as client_module

    monkeypatch.setattr(client_module, "HISTORY_PAGE_BYTES", 500)  # tiny pages
    handle = env.client.start_workflow(core.sequential, 8, id="hist")
    handle.result()
    whole = [e.event_id for e in handle.history()]

    def get(query: dict[str, str]) -> dict:
        answer = api_get(env, "/workflows/hist/history", query)
        return {"status": answer["statusCode"], **json.loads(answer["body"])}

    ids, pages, query = [], 0, {}
    while True:
        page = get(query)
        assert page["status"] == 200, page
        pages += 1
        ids += [e["event_id"] for e in page["events"]]
        if not page["next_token"]:
            break
        query = {"next_token": page["next_token"]}
    assert ids == whole and pages > 2
    forged = get({"next_token": "eyJydW5faWQiOiAiMSJ9"})  # {"run_id": "1"}
    assert forged["status"] == 400 and forged["error"]["code"] == "invalid_page_token"
