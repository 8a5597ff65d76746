"""The workflows the benchmarks run (see benchmarks/README.md).

Deliberately trivial activities, so what is measured is the engine's cost per step, not
user code.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ostinato


@ostinato.activity
def echo(x: Any) -> Any:
    return x


@ostinato.workflow
async def sequential(ctx: ostinato.WorkflowContext, n: int) -> int:
    """W1, W2 and the replay history: `n` activities, one after the other."""
    total = 0
    for i in range(n):
        total += await ctx.execute_activity(echo, i)
    return total


@ostinato.workflow
async def fan_out(ctx: ostinato.WorkflowContext, n: int) -> int:
    """W3: `n` activities at once through asyncio.gather."""
    results = await asyncio.gather(*(ctx.execute_activity(echo, i) for i in range(n)))
    return sum(results)


@ostinato.workflow
async def sleep_then_activity(ctx: ostinato.WorkflowContext, seconds: float) -> str:
    """W4: a durable timer, then one activity."""
    await ctx.sleep(seconds)
    return await ctx.execute_activity(echo, "woke")


app = ostinato.App(workflows=[sequential, fan_out, sleep_then_activity], activities=[echo])
