"""The calls users make first: an update or query right after start, update-with-start, and
local activities from plain functions."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

import ostinato
from ostinato import RetryPolicy, workflow
from tests.apps import core
from tests.test_updates import app as cart_app

ran: Counter[str] = Counter()


def plain_add(a: int, b: int) -> int:  # no @activity
    ran["plain_add"] += 1
    return a + b


async def plain_async_upper(text: str) -> str:
    ran["upper"] += 1
    return text.upper()


def flaky_plain() -> str:
    ran["flaky"] += 1
    if ran["flaky"] < 3:
        raise RuntimeError("not yet")
    return "third time"


@workflow
async def locals_(ctx: ostinato.WorkflowContext) -> list:
    total = await ctx.execute_local_activity(plain_add, 2, 3)
    upper = await ctx.execute_local_activity(plain_async_upper, "ok")
    retried = await ctx.execute_local_activity(
        flaky_plain, retry=RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=1)))
    await ctx.sleep(5)  # a later task replays the markers without running them again
    return [total, upper, retried]


def test_an_update_right_after_start_waits_for_the_first_workflow_task(make_env):
    env = make_env(cart_app)
    handle = env.client.start_workflow("cart", id="fresh-1")  # no drain: nothing ran yet
    assert env.runtime.store.load_batches(handle.run_id) == []
    assert handle.update("add", "tea") == {"items": ["tea"], "total": 3}


def test_a_query_right_after_start_waits_for_the_first_workflow_task(make_env):
    env = make_env(cart_app)
    handle = env.client.start_workflow("cart", id="fresh-2")
    assert handle.query("items") == []


def test_update_with_start_starts_and_updates_in_one_first_task(make_env):
    env = make_env(cart_app)
    handle, out = env.client.update_with_start("cart", id="uws", update="add",
                                               update_args=["fig"])
    assert out == {"items": ["fig"], "total": 3}
    first = env.runtime.store.load_batches(handle.run_id)[0]
    assert [e for e, _ in first.events][:2] == ["WorkflowExecutionStarted",
                                                "WorkflowExecutionUpdateAccepted"]
    # a second call attaches to the running workflow (id_conflict_policy="use_existing")
    again, out = env.client.update_with_start("cart", id="uws", update="add",
                                              update_args=["tea"])
    assert again.run_id == handle.run_id and out["items"] == ["fig", "tea"]
    # a rejected update raises; the workflow it attached to runs on
    with pytest.raises(ostinato.UpdateRejectedError, match="already in the cart"):
        env.client.update_with_start("cart", id="uws", update="add", update_args=["tea"])
    assert handle.describe().status == "RUNNING"


def test_update_with_start_refuses_a_running_id_with_fail(make_env):
    env = make_env(cart_app)
    env.client.start_workflow("cart", id="taken")
    with pytest.raises(ostinato.WorkflowAlreadyStartedError):
        env.client.update_with_start("cart", id="taken", update="add", update_args=["x"],
                                     id_conflict_policy="fail")


def test_local_activities_take_plain_callables(make_env):
    ran.clear()
    env = make_env(ostinato.App(workflows=[locals_]))
    handle = env.client.start_workflow("locals_", id="plain")
    assert handle.result() == [5, "OK", "third time"]
    assert ran == Counter(plain_add=1, upper=1, flaky=3)  # replays did not run them again
    markers = [e.attributes for e in handle.history() if e.event_type == "MarkerRecorded"]
    assert [m["activity_type"] for m in markers] == [
        "tests.test_first_calls.plain_add", "tests.test_first_calls.plain_async_upper",
        "tests.test_first_calls.flaky_plain"]
    assert markers[2]["attempt"] == 3


def test_a_non_callable_local_activity_fails_the_workflow_clearly(make_env):
    @workflow
    async def bad(ctx: ostinato.WorkflowContext) -> None:
        await ctx.execute_local_activity(42)

    env = make_env(ostinato.App(workflows=[bad]))
    with pytest.raises(ostinato.WorkflowFailedError, match="not callable"):
        env.client.start_workflow("bad").result()


def test_core_app_still_runs_registered_local_activities(make_env):
    env = make_env(core.app)
    assert env.client.start_workflow("local", 2).result() is not None


@workflow
async def approval_first(ctx: ostinato.WorkflowContext) -> list:
    """Creates a callback and reaches a patch before anything else: with update-with-start,
    both happen while the first task applies the update (found by the simulation)."""
    cb = ctx.create_callback(timeout=timedelta(days=1))
    new_path = ctx.patched("v2")
    ctx.on_query("token", lambda: cb.token)
    notes: list[str] = []

    def note(text: str) -> int:
        notes.append(text)
        return len(notes)

    ctx.on_update("note", note)
    await ctx.sleep(60)  # a later task replays the first batch from history
    return [await cb, new_path, notes]


def test_a_callback_and_a_patch_made_in_an_update_with_starts_first_task_replay(make_env):
    env = make_env(ostinato.App(workflows=[approval_first]))
    handle, count = env.client.update_with_start(approval_first, id="uws-cb", update="note",
                                                 update_args=["hi"])
    assert count == 1
    env.runtime.engine.history.forget(handle.run_id)  # the next decision replays cold
    env.sleep(61)
    # the token a query replays is the one the decider recorded, so it completes the callback
    env.client.complete_callback(handle.query("token"), "approved")
    assert handle.result() == ["approved", True, ["hi"]]
