"""Long histories: a 50,000-event run end to end, `ctx.info.history_length` and
`is_continue_as_new_suggested()`, and local activities spread over workflow tasks."""

from __future__ import annotations

import asyncio
import json

import pytest

import ostinato
from ostinato import workflow
from ostinato._core import history as h
from ostinato._core.meter import SUGGEST_CONTINUE_AS_NEW_BYTES, SUGGEST_CONTINUE_AS_NEW_EVENTS
from ostinato._core.replay import check_document
from ostinato._engine import activities
from ostinato._engine.cache import HistoryCache
from tests.conftest import assert_history_sound
from tests.test_api import call

LONG_RUN = 50_000


def entry(i: int) -> int:
    return i


@workflow
async def ledger(ctx: ostinato.WorkflowContext, n: int) -> dict:
    """`n` local activities in a row; sleeps once, where continue-as-new is first suggested
    (so a replay that saw the suggestion anywhere else would not match its history)."""
    suggested_at = None
    lengths: dict[str, int] = {}
    ctx.on_query("lengths", lambda: {"suggested_at": suggested_at, "lengths": lengths})
    for i in range(n):
        await ctx.execute_local_activity(entry, i)
        if suggested_at is None and ctx.info.is_continue_as_new_suggested():
            suggested_at = ctx.info.history_length
            ctx.set_status({"suggested_at": suggested_at})
            await ctx.sleep(1)
        if i % 10_000 == 9_999:
            lengths[str(i)] = ctx.info.history_length
    return {"entries": n, "suggested_at": suggested_at, "lengths": lengths}


@workflow
async def counted(ctx: ostinato.WorkflowContext) -> list:
    """history_length at each step: after the start, a signal, a timer, a local activity."""
    seen = [ctx.info.history_length]
    await ctx.wait_for_signal("go")
    seen.append(ctx.info.history_length)
    await ctx.sleep(5)
    seen.append(ctx.info.history_length)
    await ctx.execute_local_activity(entry, 1)
    seen.append(ctx.info.history_length)
    info = ctx.info
    seen.append([info.history_size, info.is_continue_as_new_suggested()])
    return seen


def blob() -> str:
    return "x" * 100_000


@workflow
async def blobs(ctx: ostinato.WorkflowContext, runs: int) -> dict:
    """The pattern the suggestion is for: work until it says so, then continue as new."""
    while not ctx.info.is_continue_as_new_suggested():
        await ctx.execute_local_activity(blob)
    if runs > 1:
        ctx.continue_as_new(runs - 1)
    return {"length": ctx.info.history_length, "size": ctx.info.history_size}


@workflow
async def fan_locals(ctx: ostinato.WorkflowContext, n: int) -> list:
    return list(await asyncio.gather(*(ctx.execute_local_activity(entry, i)
                                       for i in range(n))))


app = ostinato.App(workflows=[ledger, counted, fan_locals, blobs])


def test_history_length_counts_what_replay_has_seen(make_env):
    env = make_env(app)
    handle = env.client.start_workflow(counted, id="counted")
    env.drain()
    handle.signal("go")
    result = handle.result()
    # 1 started | 2 signaled | 3 timer started, 4 fired | 5 marker
    events = [e for b in env.runtime.store.load_batches(handle.run_id) for e in b.events]
    assert [etype for etype, _ in events][:5] == [
        h.STARTED, h.SIGNALED, h.TIMER_STARTED, h.TIMER_FIRED, h.MARKER_RECORDED]
    size = sum(len(json.dumps(e, separators=(",", ":")).encode()) for e in events[:5])
    assert result == [1, 2, 4, 5, [size, False]]  # bytes of those events' JSON


def test_continue_as_new_is_suggested_at_4_mib_of_history_too(make_env):
    env = make_env(app)
    handle = env.client.start_workflow(blobs, 2, id="blobs")
    result = handle.result()
    marker = result["size"] // (result["length"] - 1)  # started is small
    assert result["length"] < SUGGEST_CONTINUE_AS_NEW_EVENTS
    assert SUGGEST_CONTINUE_AS_NEW_BYTES <= result["size"] < SUGGEST_CONTINUE_AS_NEW_BYTES + marker
    described = handle.describe()
    assert described.status == "COMPLETED" and described.run_id != handle.run_id  # 2nd run


def test_local_activities_past_the_task_budget_continue_in_the_next_task(make_env,
                                                                         monkeypatch):
    monkeypatch.setattr(activities, "LOCAL_TASK_BYTES", 1)  # one marker per workflow task
    env = make_env(app)
    handle = env.client.start_workflow(fan_locals, 4, id="fan")
    assert handle.result() == [0, 1, 2, 3]
    batches = env.runtime.store.load_batches(handle.run_id)
    markers = [[a["seq"] for e, a in b.events if e == h.MARKER_RECORDED] for b in batches]
    assert markers == [[1], [2], [3], [4]]  # each task ran one, the rest came back as due
    assert_history_sound(handle.history())


@pytest.mark.slow
def test_a_run_of_50000_events(make_env):
    env = make_env(app)
    handle = env.client.start_workflow(ledger, LONG_RUN, id="long")
    result = handle.result()

    # continue-as-new was suggested at Temporal's threshold, and replays agree on where
    assert result["suggested_at"] == SUGGEST_CONTINUE_AS_NEW_EVENTS
    described = handle.describe()
    assert described.status == "COMPLETED"
    assert described.custom_status == {"suggested_at": SUGGEST_CONTINUE_AS_NEW_EVENTS}
    # after marker i: started + i + 1 markers + the timer's two events
    assert result["lengths"] == {str(i): i + 4 for i in range(9_999, LONG_RUN, 10_000)}
    assert handle.query("lengths") == {"suggested_at": result["suggested_at"],
                                       "lengths": result["lengths"]}

    # the decider read and wrote it in batches no larger than a batch may be
    batches = env.runtime.store.load_batches(handle.run_id)
    total = sum(len(b.events) for b in batches)
    assert total == LONG_RUN + 4
    assert len(batches) > 5
    assert max(len(h.encode_body(b).encode()) for b in batches) < h.MAX_BATCH_BYTES
    assert sum(len(json.dumps(b.events)) for b in batches) < SUGGEST_CONTINUE_AS_NEW_BYTES * 2

    # the HTTP history comes in pages that put the whole replayable document together
    status, doc = call("GET", "/workflows/long/history")
    pages = 1
    assert status == 200
    while doc["next_token"]:
        status, page = call("GET", "/workflows/long/history",
                            query={"next_token": doc["next_token"]})
        assert status == 200 and page["run_id"] == doc["run_id"]
        doc["events"] += page["events"]
        doc["tasks"] += page["tasks"]
        doc["next_token"] = page["next_token"]
        pages += 1
    assert pages > 1
    assert [e["event_id"] for e in doc["events"]] == list(range(1, total + 1))
    assert doc["events"][-1]["event_type"] == h.COMPLETED
    check_document(app, doc)  # the pages replay against the code
    assert call("GET", "/workflows/long")[1]["status"] == "COMPLETED"


def test_the_decider_cache_is_bounded_by_events_not_only_runs():
    def run(events: int) -> list[h.Batch]:
        return [h.Batch(1, 1, 0.0, True, [(h.SIGNALED, {"name": "s"})] * events)]

    cache = HistoryCache(max_runs=10, max_events=1_000)
    cache.keep("a", run(400))
    cache.keep("b", run(400))
    cache.keep("a", run(500))  # a is the most recent now: b goes first
    cache.keep("c", run(200))
    assert (cache.cached_events, list(cache._runs)) == (700, ["a", "c"])
    cache.keep("huge", run(5_000))  # the run being decided stays, alone
    assert (cache.cached_events, list(cache._runs)) == (5_000, ["huge"])
    cache.forget("huge")
    assert cache.cached_events == 0
    nothing = HistoryCache(max_runs=0)  # what the cold-read benchmark uses
    nothing.keep("a", run(1))
    assert nothing.cached_events == 0
