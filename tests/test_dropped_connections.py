"""The emulated AWS services do not fall over: a probe that drops 4% of every botocore call
in the environment (the pollers' receives and deletes, Scheduler's listing and deliveries,
the engine's own calls), half before they reach moto and half after they took effect, leaves
every workflow completing with the right result; only the engine sees the faults."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import ostinato
from ostinato import RetryPolicy, activity, activity_context, workflow
from ostinato._core import keys, wire
from ostinato._local.faults import looking
from ostinato._local.probe import DroppedConnections
from ostinato.testing import WorkflowEnvironment
from tests.apps import core, mixed
from tests.conftest import assert_history_sound


@activity(retry=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=0))
def wobbly(succeed_on: int) -> str:
    """Fails its first attempts, then succeeds; retried without limit."""
    attempt = activity_context().info.attempt
    if attempt < succeed_on:
        raise RuntimeError(f"attempt {attempt} failed")
    return f"ok on {attempt}"


@workflow
async def parent_with_update(ctx: ostinato.WorkflowContext, wid: str) -> dict[str, Any]:
    """An update that runs an activity, a signal, a long (Scheduler) timer and a child."""
    notes: list[str] = []
    ctx.on_signal("note", notes.append)

    async def add(note: str) -> int:
        notes.append(await ctx.execute_activity(mixed.step, note))
        return len(notes)

    ctx.on_update("add", add)
    await ctx.sleep(timedelta(hours=2))  # beyond SQS delays: an EventBridge schedule
    child = await ctx.execute_child_workflow(core.sequential, 3, id=f"{wid}-child")
    await ctx.wait_condition(lambda: len(notes) >= 2, timeout=timedelta(days=1))
    return {"notes": sorted(notes), "child": child}


app = ostinato.App(
    workflows=[mixed.mixed, mixed.helper, core.call_activity, core.sleeper, core.signals,
               core.long_timer, core.sequential, parent_with_update],
    activities=[mixed.step, core.echo, wobbly])


@pytest.mark.parametrize("seed", [20261202, 9])
def test_the_environment_survives_dropping_4_percent_of_all_aws_calls(seed):
    core.reset()
    mixed.executions.clear()
    with DroppedConnections(seed=seed, rate=0.04) as probe, \
            WorkflowEnvironment(app, backend="moto") as env:  # the probe hooks botocore
        with looking():  # the test's own calls, from outside the system
            handles = {
                "mix": env.client.start_workflow(mixed.mixed, "mix", id="mix"),
                "retries": env.client.start_workflow(core.call_activity, "wobbly", 3, id="retries"),
                "sleeper": env.client.start_workflow(core.sleeper, 30, id="sleeper"),
                "signals": env.client.start_workflow(core.signals, id="signals"),
                "long": env.client.start_workflow(core.long_timer, id="long"),
                "update": env.client.start_workflow(parent_with_update, "up", id="up"),
            }
        probe.arm()
        env.sleep(600)  # past mixed's 5-minute timer (it waits an hour for its signal)
        with looking():
            token = _query_until(env, handles["mix"], "token")
            for n, name in ((7, "bump-mix"), (None, "add-up")):
                handle = handles["mix" if n else "update"]
                env.client.transport.send_workflow_task(wire.Update(
                    handle.id, handle.current_run_id(), keys.update(name), update_id=name,
                    name="bump" if n else "add", args=[n or "via update"]))
            handles["mix"].signal("poke", "hi")
            env.client.complete_callback(token, "ok mix")
            handles["update"].signal("note", "via signal")
            for item in ("a", "b", "c", "d"):
                handles["signals"].signal("item", item)
            # waiting drives the environment, under the probe (only the looking is spared)
            results = {name: h.result(timeout=300) for name, h in handles.items()}
            histories = {name: h.history() for name, h in handles.items()}
        dropped = probe.by_operation()
        calls = probe.calls
    assert results["mix"] == mixed.expected("mix")
    # two failed attempts, retried; an attempt whose receive was dropped after it took effect
    # comes back with a receive count of 2 and counts as failed (as a dead worker's would)
    ok, attempt = results["retries"]["ok"].rsplit(" ", 1)
    assert ok == "ok on" and int(attempt) >= 3
    # durable timers never fire early; a dropped receive may make one late (its messages
    # reappear after the visibility timeout, as on SQS)
    assert results["sleeper"]["first"] >= 30 and results["sleeper"]["slept"] >= 60
    assert results["signals"] == {"seen": ["a", "b", "c", "d", "no more"]}
    assert results["long"] == "after two days"
    assert results["update"] == {"notes": ["VIA UPDATE", "via signal"], "child": [0, 1, 2]}
    for history in histories.values():
        assert_history_sound(history)
    # the probe reached the emulated services' own calls (Scheduler's listing, the pollers')
    # as well as the engine's
    assert calls > 500 and sum(dropped.values()) >= 0.02 * calls, (calls, dropped)
    services = {op.split(".")[0] for op in dropped}
    assert {"sqs", "scheduler"} <= services, dropped


def _query_until(env: WorkflowEnvironment, handle: Any, name: str) -> Any:
    for _ in range(60):
        try:
            return handle.query(name)
        except ostinato.QueryRejectedError:
            env.sleep(60)
    raise AssertionError(f"query {name!r} never answered")
