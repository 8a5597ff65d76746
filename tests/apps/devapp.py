"""A quick app for the `ostinato dev` end-to-end tests: activities, signals, queries, a timer."""

from __future__ import annotations

import ostinato
from ostinato import activity, workflow


@activity
def shout(text: str) -> str:
    return text.upper()


@workflow
async def approval(ctx: ostinato.WorkflowContext, items: list[str]) -> dict:
    """Shout each item, then wait for an "approve" signal."""
    approved: list[str] = []
    ctx.on_signal("approve", approved.append)
    ctx.on_query("progress", lambda: {"approved": approved, "items": items})
    ctx.set_status("shouting")
    shouted = [await ctx.execute_activity(shout, item) for item in items]
    ctx.set_status("awaiting approval")
    await ctx.wait_condition(lambda: bool(approved))
    ctx.set_status("done")
    return {"shouted": shouted, "approved_by": approved[0]}


@workflow
async def nap(ctx: ostinato.WorkflowContext, seconds: float) -> str:
    """Sleep on a durable timer."""
    await ctx.sleep(seconds)
    return f"slept {seconds:g}s"


app = ostinato.App(workflows=[approval, nap], activities=[shout])
