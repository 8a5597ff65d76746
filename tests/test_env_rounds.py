"""One round of the test environment (`WorkflowEnvironment.step`) runs each event-source
mapping as many times as Lambda would run it at once: the template's ScalingConfig
MaximumConcurrency. A fan-out's activity outcomes then reach the decider together."""

from __future__ import annotations

import asyncio

import ostinato
from ostinato import activity, workflow

N = 40


@activity
def double(x: int) -> int:
    return 2 * x


@workflow
async def fan(ctx: ostinato.WorkflowContext, n: int) -> int:
    return sum(await asyncio.gather(*(ctx.execute_activity(double, i) for i in range(n))))


APP = ostinato.App(workflows=[fan], activities=[double])


def test_mappings_read_their_concurrency_from_the_template(make_env):
    env = make_env(APP)
    concurrency = {p.mapping.function: p.mapping.concurrency for p in env.pollers}
    assert concurrency == {"WorkflowTaskFunction": 20, "ActivityTaskFunction": 20,
                           "TimerFunction": 5, "EventsFunction": 5}


def test_a_round_runs_each_mapping_up_to_its_concurrency(make_env):
    env = make_env(APP)
    decisions: list[str] = []
    env.engine.on_events = lambda wid, rid, events: decisions.append(rid)
    activities = next(p for p in env.pollers if p.mapping.function == "ActivityTaskFunction")
    handle = env.client.start_workflow(fan, N, id="fan")
    env.step()  # the start schedules N activity tasks; then 20 of them run (one per
    # invocation, BatchSize 1), as 20 concurrent invocations would, not all N
    assert len(decisions) == 1 and activities.invocations == 20
    env.step()  # their outcomes are decided; the next 20 run
    assert activities.invocations == N and len(decisions) <= 3, decisions
    assert handle.result(timeout=30) == N * (N - 1)
    assert activities.invocations == N
    # outcomes of one round are decided together (up to 10 per FIFO batch), not one by one
    assert len(decisions) <= 1 + N // 10 + 2, decisions
