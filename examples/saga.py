"""A trip-booking saga: each booking is a child workflow; a failure undoes what succeeded.

Against the local stack:

    .venv/bin/ostinato dev examples.saga:app
    .venv/bin/ostinato workflow start trip '{"flight": "LH1", "hotel": "Adlon", "car": ""}' --id t1
    .venv/bin/ostinato workflow result t1      # car booking fails: hotel and flight are undone
    .venv/bin/ostinato workflow history t1
"""

from __future__ import annotations

import ostinato
from ostinato import ApplicationError, RetryPolicy, activity, workflow


@activity(retry=RetryPolicy(maximum_attempts=3))
def book(kind: str, what: str) -> str:
    if not what:
        raise ApplicationError(f"no {kind} to book", type="NothingToBook", non_retryable=True)
    return f"{kind} {what} booked"


@activity
def cancel(kind: str, what: str) -> str:
    return f"{kind} {what} cancelled"


@workflow
async def booking(ctx: ostinato.WorkflowContext, kind: str, what: str) -> str:
    try:
        return await ctx.execute_activity(book, kind, what)
    except ostinato.ActivityError as err:  # report the business reason, not the plumbing
        raise ApplicationError(str(err.cause), type="BookingFailed") from err


@workflow
async def trip(ctx: ostinato.WorkflowContext, plan: dict) -> dict:
    done: list[tuple[str, str]] = []
    try:
        for kind in ("flight", "hotel", "car"):
            await ctx.execute_child_workflow(booking, kind, plan.get(kind, ""),
                                             id=f"{ctx.info.workflow_id}-{kind}")
            done.append((kind, plan[kind]))
    except ostinato.ChildWorkflowError as failure:
        undone = [await ctx.execute_activity(cancel, kind, what) for kind, what in reversed(done)]
        return {"booked": False, "why": str(failure.cause), "compensated": undone}
    return {"booked": True, "items": [f"{k} {w}" for k, w in done]}


app = ostinato.App(workflows=[trip, booking], activities=[book, cancel])
