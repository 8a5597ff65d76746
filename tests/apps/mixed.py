"""A workflow touching every moving part at once, for fault-injection runs."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import ostinato
from ostinato import RetryPolicy, activity, workflow

executions: Counter[str] = Counter()


@activity(retry=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=0))
def step(name: str) -> str:
    executions[name] += 1
    return name.upper()


@workflow
async def helper(ctx: ostinato.WorkflowContext, wid: str) -> str:
    return await ctx.execute_activity(step, f"{wid}-child")


@workflow
async def mixed(ctx: ostinato.WorkflowContext, wid: str) -> dict:
    got: list[str] = []
    ctx.on_signal("poke", got.append)
    approval = ctx.create_callback(timeout=timedelta(days=1))
    ctx.on_query("token", lambda: approval.token)
    bumps: list[int] = []

    async def bump(n: int) -> int:
        bumps.append(await ctx.execute_activity(step, f"{wid}-bump") and n)
        return len(bumps)

    ctx.on_update("bump", bump, validator=lambda n: None if n > 0 else 1 / 0)
    first = await ctx.execute_activity(step, f"{wid}-a")
    pair = await asyncio.gather(ctx.execute_activity(step, f"{wid}-b"),
                                ctx.execute_activity(step, f"{wid}-c"))
    child = await ctx.execute_child_workflow(helper, wid, id=f"{wid}-helper")
    await ctx.sleep(timedelta(minutes=5))
    local = await ctx.execute_local_activity(step, f"{wid}-local")
    await ctx.wait_condition(lambda: got and bumps, timeout=timedelta(hours=1))
    return {"first": first, "pair": list(pair), "local": local, "signal": got[0],
            "approved": await approval, "bumps": bumps, "child": child}


def expected(wid: str) -> dict:
    return {"first": f"{wid}-A".upper(), "pair": [f"{wid}-B".upper(), f"{wid}-C".upper()],
            "local": f"{wid}-LOCAL".upper(), "signal": "hi", "approved": f"ok {wid}",
            "bumps": [7], "child": f"{wid}-CHILD".upper()}


app = ostinato.App(workflows=[mixed, helper], activities=[step])
