"""Child workflows: results, failures, parent close policies, cancellation, exactly-once start."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import ostinato
from ostinato import ApplicationError, activity, workflow

runs: Counter[str] = Counter()


@activity
def refund(order: str) -> str:
    runs[f"refund {order}"] += 1
    return f"refunded {order}"


@workflow
async def charge(ctx: ostinato.WorkflowContext, order: str, amount: int) -> str:
    runs[f"charge {order}"] += 0 if ctx.is_replaying else 1
    if amount > 100:
        raise ApplicationError("card declined", type="Declined")
    return f"charged {amount} for {order}"


@workflow
async def forever(ctx: ostinato.WorkflowContext) -> str:
    try:
        await ctx.wait_for_signal("never")
    except asyncio.CancelledError:
        runs["child cancelled"] += 1
        raise
    return "unreachable"


@workflow
async def saga(ctx: ostinato.WorkflowContext, order: str, amount: int) -> dict:
    try:
        receipt = await ctx.execute_child_workflow(charge, order, amount, id=f"charge-{order}")
    except ostinato.ChildWorkflowError as err:
        compensation = await ctx.execute_activity(refund, order)
        return {"error": str(err.cause), "type": err.cause.type, "compensation": compensation}
    return {"receipt": receipt}


@workflow
async def leaves_child(ctx: ostinato.WorkflowContext, policy: str) -> str:
    child = asyncio.ensure_future(ctx.execute_child_workflow(
        forever, id=f"orphan-{policy}", parent_close_policy=policy))
    await ctx.sleep(10)  # the child is running by now
    assert not child.done()
    return "parent done"


@workflow
async def waits_on_child(ctx: ostinato.WorkflowContext) -> str:
    try:
        # abandon: the cancel below is the only order the child gets (with "terminate" the
        # parent's closing would race it with a terminate)
        return await ctx.execute_child_workflow(forever, id="awaited",
                                                parent_close_policy="abandon")
    except asyncio.CancelledError:
        return "parent cancelled its wait"


app = ostinato.App(workflows=[charge, forever, saga, leaves_child, waits_on_child],
                   activities=[refund])


@pytest.fixture
def env(make_env):
    runs.clear()
    return make_env(app)


def test_child_result_and_exactly_once_start(env):
    handle = env.client.start_workflow("saga", "o1", 40, id="saga-1")
    assert handle.result() == {"receipt": "charged 40 for o1"}
    assert runs["charge o1"] == 1  # the parent replayed several times; one child run
    child = env.client.get_workflow_handle("charge-o1").describe()
    assert child.status == "COMPLETED" and child.result == "charged 40 for o1"
    assert len(list(env.client.list_workflows(workflow_type="charge"))) == 1
    types = [e.event_type for e in handle.history()]
    assert types.count("StartChildWorkflowExecutionInitiated") == 1
    assert "ChildWorkflowExecutionCompleted" in types
    started = env.client.get_workflow_handle("charge-o1").history()[0].attributes
    assert started["parent"]["wid"] == "saga-1"


def test_child_failure_carries_its_cause_and_the_saga_compensates(env):
    handle = env.client.start_workflow("saga", "o2", 500, id="saga-2")
    assert handle.result() == {"error": "card declined", "type": "Declined",
                               "compensation": "refunded o2"}
    assert runs["refund o2"] == 1


@pytest.mark.parametrize("policy, status", [("terminate", "TERMINATED"),
                                            ("request_cancel", "CANCELLED"),
                                            ("abandon", "RUNNING")])
def test_parent_close_policies(env, policy, status):
    handle = env.client.start_workflow("leaves_child", policy, id=f"p-{policy}")
    assert handle.result() == "parent done"
    env.drain()
    assert env.client.get_workflow_handle(f"orphan-{policy}").describe().status == status
    assert runs["child cancelled"] == (1 if policy == "request_cancel" else 0)


def test_cancelling_the_parent_cancels_the_awaited_child(env):
    handle = env.client.start_workflow("waits_on_child", id="parent")
    env.drain()
    handle.cancel()
    assert handle.result() == "parent cancelled its wait"
    env.drain()
    assert env.client.get_workflow_handle("awaited").describe().status == "CANCELLED"
    assert runs["child cancelled"] == 1


def test_child_id_already_running_fails_the_child_call(env):
    env.client.start_workflow("forever", id="charge-o3")
    handle = env.client.start_workflow("saga", "o3", 40, id="saga-3")
    result = handle.result()
    assert result["type"] == "WorkflowAlreadyStarted" and result["compensation"] == "refunded o3"
