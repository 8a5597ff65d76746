"""Updates: validated, recorded, possibly long-running, with the handler's result returned."""

from __future__ import annotations

import pytest

import ostinato
from ostinato import activity, workflow
from ostinato._core import keys, wire

validated: list[str] = []


@activity
def price(item: str) -> int:
    return len(item)


@workflow
async def cart(ctx: ostinato.WorkflowContext) -> dict:
    items: list[str] = []
    total = {"value": 0}

    def check(item: str) -> None:
        validated.append(item)
        if not item:
            raise ValueError("item name must not be empty")
        if item in items:
            raise ValueError(f"{item} is already in the cart")

    async def add(item: str) -> dict:
        cost = await ctx.execute_activity(price, item)  # handlers may run activities
        await ctx.sleep(60)                              # and timers
        items.append(item)
        total["value"] += cost
        return {"items": list(items), "total": total["value"]}

    def remove(item: str) -> list[str]:
        items.remove(item)  # ValueError when absent: fails the update, not the workflow
        return list(items)

    ctx.on_update("add", add, validator=check)
    ctx.on_update("remove", remove)
    ctx.on_query("items", lambda: list(items))
    await ctx.wait_for_signal("checkout")
    return {"items": items, "total": total["value"]}


app = ostinato.App(workflows=[cart], activities=[price])


@pytest.fixture
def env(make_env):
    validated.clear()
    return make_env(app)


def test_update_runs_activities_and_returns_its_result(env):
    handle = env.client.start_workflow("cart", id="c1")
    env.drain()
    assert handle.update("add", "apple") == {"items": ["apple"], "total": 5}
    assert handle.update("add", "kiwi") == {"items": ["apple", "kiwi"], "total": 9}
    assert handle.query("items") == ["apple", "kiwi"]
    types = [e.event_type for e in handle.history()]
    assert types.count("WorkflowExecutionUpdateAccepted") == 2
    assert types.count("WorkflowExecutionUpdateCompleted") == 2
    handle.signal("checkout")
    assert handle.result() == {"items": ["apple", "kiwi"], "total": 9}


def test_validator_rejects_before_anything_is_recorded(env):
    handle = env.client.start_workflow("cart", id="c2")
    env.drain()
    handle.update("add", "pear")
    before = len(handle.history())
    with pytest.raises(ostinato.UpdateRejectedError, match="already in the cart"):
        handle.update("add", "pear")
    with pytest.raises(ostinato.UpdateRejectedError, match="must not be empty"):
        handle.update("add", "")
    with pytest.raises(ostinato.UpdateRejectedError, match="unknown update 'nope'"):
        handle.update("nope")
    env.drain()
    assert len(handle.history()) == before  # rejections wrote no events


def test_decider_validates_again_against_the_latest_state(env):
    """An update that skipped the caller-side check (e.g. raced another) is refused by the
    decider's validation, against the state at the moment it would be accepted."""
    handle = env.client.start_workflow("cart", id="c3")
    env.drain()
    handle.update("add", "fig")
    before = len(handle.history())
    run = handle.current_run_id()
    env.client.transport.send_workflow_task(wire.Update(
        "c3", run, keys.update("u2"), update_id="u2", name="add", args=["fig"]))
    env.drain()
    assert env.runtime.store.update_outcome(run, "u2") == {
        "rejected": "fig is already in the cart"}
    assert len(handle.history()) == before


def test_failing_handler_fails_the_update_not_the_workflow(env):
    handle = env.client.start_workflow("cart", id="c4")
    env.drain()
    with pytest.raises(ostinato.ApplicationError, match="not in list"):
        handle.update("remove", "ghost")
    assert handle.describe().status == "RUNNING"
    handle.signal("checkout")
    assert handle.result() == {"items": [], "total": 0}


def test_update_to_a_closed_workflow_is_refused(env):
    handle = env.client.start_workflow("cart", id="c5")
    handle.signal("checkout")
    handle.result()
    with pytest.raises(ostinato.WorkflowClosedError):
        handle.update("add", "late")


@workflow
async def hasty(ctx: ostinato.WorkflowContext) -> str:
    async def slow(x: int) -> int:
        await ctx.sleep(3600)
        return x

    ctx.on_update("slow", slow)
    await ctx.wait_for_signal("go")
    return "closed while an update was running"


def test_update_running_when_the_workflow_closes_is_answered(make_env):
    """Review finding: the caller of an update still running at close waited forever."""
    env = make_env(ostinato.App(workflows=[hasty]))
    handle = env.client.start_workflow("hasty", id="h1")
    env.drain()
    run = handle.current_run_id()
    env.client.transport.send_workflow_task(wire.Update(
        "h1", run, keys.update("u1"), update_id="u1", name="slow", args=[1]))
    handle.signal("go")
    assert handle.result() == "closed while an update was running"
    env.drain()
    outcome = env.runtime.store.update_outcome(run, "u1")
    assert outcome == {"rejected": "workflow closed (COMPLETED) before the update finished"}
