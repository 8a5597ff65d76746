"""Three versions of one workflow, as a team would ship them (see tests/test_lifecycle.py)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import ostinato
from ostinato import activity, workflow

ran: Counter[str] = Counter()


@activity
def step(name: str) -> str:
    ran[name] += 1
    return name


@workflow(name="fulfil")
async def fulfil_v1(ctx: ostinato.WorkflowContext, order: str) -> list[str]:
    done = [await ctx.execute_activity(step, f"pack {order}")]
    await ctx.wait_for_signal("go")
    done.append(await ctx.execute_activity(step, f"ship {order}"))
    await ctx.wait_for_signal("finish")
    return done


@workflow(name="fulfil")
async def fulfil_v2(ctx: ostinato.WorkflowContext, order: str) -> list[str]:
    done = [await ctx.execute_activity(step, f"pack {order}")]
    await ctx.wait_for_signal("go")
    if ctx.patched("insure-before-ship"):
        done.append(await ctx.execute_activity(step, f"insure {order}"))
    done.append(await ctx.execute_activity(step, f"ship {order}"))
    await ctx.wait_for_signal("finish")
    return done


@workflow(name="fulfil")
async def fulfil_v3(ctx: ostinato.WorkflowContext, order: str) -> list[str]:
    done = [await ctx.execute_activity(step, f"pack {order}")]
    await ctx.wait_for_signal("go")
    ctx.deprecate_patch("insure-before-ship")
    done.append(await ctx.execute_activity(step, f"insure {order}"))
    done.append(await ctx.execute_activity(step, f"ship {order}"))
    await ctx.wait_for_signal("finish")
    return done


@workflow(name="fulfil")
async def fulfil_unpatched_change(ctx: ostinato.WorkflowContext, order: str) -> list[str]:
    done = [await ctx.execute_activity(step, f"pack {order}")]
    await ctx.wait_for_signal("go")
    done.append(await ctx.execute_activity(step, f"insure {order}"))  # no patch: breaks v1
    done.append(await ctx.execute_activity(step, f"ship {order}"))
    await ctx.wait_for_signal("finish")
    return done


@workflow
async def countdown(ctx: ostinato.WorkflowContext, n: int, total: int = 0) -> dict:
    if n > 0:
        total += await ctx.execute_activity(step, f"tick {n}") and n
        ctx.continue_as_new(n - 1, total)
    return {"total": total, "continued_from": bool(ctx.info.continued_from)}


@workflow(execution_timeout=timedelta(hours=1))
async def slow_chain(ctx: ostinato.WorkflowContext, rounds: int) -> str:
    await ctx.sleep(timedelta(minutes=25))
    if rounds > 0:
        ctx.continue_as_new(rounds - 1)  # the timeout spans the whole chain
    return "finished"


def app_with(version) -> ostinato.App:
    return ostinato.App(workflows=[version, countdown, slow_chain], activities=[step])
