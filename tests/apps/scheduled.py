"""Workflows that schedules start: a quick one and one that outlives an hourly schedule."""

from __future__ import annotations

from datetime import timedelta

import ostinato
from ostinato import workflow


@workflow
async def tick(ctx: ostinato.WorkflowContext, label: str) -> str:
    return f"{label} {ctx.info.workflow_id}"


@workflow
async def slow_report(ctx: ostinato.WorkflowContext, minutes: int) -> str:
    await ctx.sleep(timedelta(minutes=minutes))
    return f"reported after {minutes} min"


app = ostinato.App(workflows=[tick, slow_report])
