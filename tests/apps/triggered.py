"""Workflows started by EventBridge events through `EventTrigger`s."""

from __future__ import annotations

from typing import Any

import ostinato
from ostinato import EventTrigger, activity, workflow


@activity
def reserve(item: str) -> str:
    return f"reserved {item}"


@workflow
async def fulfil(ctx: ostinato.WorkflowContext, order_id: str, items: list[str]) -> dict:
    receipts = [await ctx.execute_activity(reserve, item) for item in items]
    return {"order": order_id, "receipts": receipts}


@workflow
async def notify(ctx: ostinato.WorkflowContext, detail: dict[str, Any]) -> str:
    return f"told {detail['customer']}"


@workflow
async def refund(ctx: ostinato.WorkflowContext, order_id: str) -> str:
    return f"refunded {order_id}"


def _broken_id(event: dict[str, Any]) -> str:
    return "audit-" + event["detail"]["no_such_field"]


app = ostinato.App(
    workflows=[fulfil, notify, refund],
    activities=[reserve],
    triggers=[
        # two triggers on one event type: each starts its own workflow
        EventTrigger(fulfil, source="shop", detail_type="OrderPlaced",
                     args=lambda e: [e["detail"]["id"], e["detail"]["items"]],
                     id=lambda e: "order-" + e["detail"]["id"]),
        EventTrigger(notify, source=["shop", "shop.eu"], detail_type="OrderPlaced",
                     id=lambda e: "notify-" + e["detail"]["id"]),  # args: [detail]
        EventTrigger("refund", source="shop", detail_type=["OrderCancelled", "OrderLost"],
                     args=lambda e: [e["detail"]["id"]],
                     id=lambda e: "refund-" + e["detail"]["id"]),
        # on one event type: a trigger whose id function fails, and one that works
        EventTrigger(refund, source="audit", detail_type="OrderAudited", id=_broken_id),
        EventTrigger(notify, source="audit", detail_type="OrderAudited",
                     id=lambda e: "audit-notify-" + e["detail"]["id"]),
    ],
)
