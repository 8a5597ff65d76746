"""The demo app: reserve items in parallel, wait for an approval signal, settle, ship."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import ostinato
from ostinato import ApplicationError, RetryPolicy, activity, workflow


@activity(start_to_close_timeout=timedelta(seconds=30),
          retry=RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=1),
                            backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1),
                            non_retryable_error_types=["ValueError"]))
def reserve(item: str) -> str:
    if not item:
        raise ValueError("empty item name")
    return f"reserved {item}"


@activity
def charge(amount: int) -> dict:
    if amount <= 0:
        raise ApplicationError("nothing to charge", type="InvalidAmount", non_retryable=True)
    return {"charged": amount}


@activity
def ship(items: list[str]) -> str:
    return f"shipped {len(items)} item(s)"


@workflow
async def order(ctx: ostinato.WorkflowContext, items: list[str],
                ship_after_seconds: float = 3600) -> dict:
    approved: list[str] = []
    ctx.on_signal("approve", lambda who: approved.append(who))
    ctx.on_query("progress", lambda: {"approved": approved, "items": items})
    ctx.set_status("reserving")
    receipts = await asyncio.gather(*(ctx.execute_activity(reserve, i) for i in items))
    ctx.set_status("awaiting approval")
    await ctx.wait_condition(lambda: approved, timeout=timedelta(days=3))
    payment = await ctx.execute_activity(charge, 10 * len(items))
    await ctx.sleep(ship_after_seconds)  # a durable timer: an hour by default
    shipment = await ctx.execute_activity(ship, items)
    ctx.set_status("done")
    return {"receipts": receipts, "approved_by": approved[0], "payment": payment,
            "shipment": shipment}


app = ostinato.App(workflows=[order], activities=[reserve, charge, ship])
