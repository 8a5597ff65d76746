"""Event-triggered orders: an `OrderPlaced` event on the bus starts one workflow per order.

Try it locally (two terminals, from the repository root):

    ostinato dev examples.event_order:app

    ostinato event put --source shop --detail-type OrderPlaced \\
        '{"id": "1001", "customer": "ann", "items": ["apple", "pear"]}'
    ostinato workflow result order-1001 --timeout 30
    ostinato event put --source shop --detail-type OrderPlaced \\
        '{"id": "1001", "customer": "ann", "items": ["apple", "pear"]}'   # a duplicate:
    ostinato workflow list --type fulfil_order                           # still one run
    ostinato event put --source shop --detail-type OrderCancelled '{"id": "1001"}'
    ostinato workflow result refund-1001 --timeout 30

The same event over plain HTTP (the body is EventBridge's PutEvents request):

    curl -s localhost:8787/events -H 'content-type: application/json' -d '{"Entries": [
      {"Source": "shop", "DetailType": "OrderPlaced",
       "Detail": {"id": "1002", "customer": "bo", "items": ["fig"]}}]}'

(`Detail` may be the JSON object itself, or its text as PutEvents wants it.)

A recurring schedule of the report workflow (EventBridge Scheduler; `ostinato dev` fires it
on the real clock, so use a short rate to watch it):

    ostinato schedule create sales-report sales_report --rate "1 minute" --overlap skip
    ostinato schedule list
    ostinato workflow list --type sales_report
    ostinato schedule delete sales-report

On AWS: `sam deploy --guided --parameter-overrides AppSpec=examples.event_order:app
TriggerEventSources=shop`, then publish with `aws events put-events` (or `ostinato event put
--api-url <ApiUrl>`); the stack's rule routes `shop` events to the `events` function.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import ostinato
from ostinato import ApplicationError, EventTrigger, RetryPolicy, activity, workflow


@activity(start_to_close_timeout=timedelta(seconds=30),
          retry=RetryPolicy(maximum_attempts=5, non_retryable_error_types=["OutOfStock"]))
def reserve(item: str) -> str:
    if item == "unobtainium":
        raise ApplicationError(f"{item} is out of stock", type="OutOfStock")
    return f"reserved {item}"


@activity
def release(item: str) -> str:
    return f"released {item}"


@activity
def charge(customer: str, amount: int) -> dict:
    return {"customer": customer, "charged": amount}


@activity
def ship(order_id: str, items: list[str]) -> str:
    return f"shipped order {order_id} ({len(items)} item(s))"


@workflow
async def fulfil_order(ctx: ostinato.WorkflowContext, order: dict[str, Any]) -> dict:
    """Reserve every item (releasing them all if one is missing), charge, then ship."""
    ctx.set_status("reserving")
    reserved: list[str] = []
    try:
        for item in order["items"]:
            await ctx.execute_activity(reserve, item)
            reserved.append(item)
    except ostinato.ActivityError:
        for item in reserved:
            await ctx.execute_activity(release, item)
        ctx.set_status("rejected")
        return {"order": order["id"], "status": "rejected", "released": reserved}
    ctx.set_status("charging")
    payment = await ctx.execute_activity(charge, order["customer"], 10 * len(reserved))
    shipment = await ctx.execute_activity(ship, order["id"], reserved)
    ctx.set_status("shipped")
    return {"order": order["id"], "status": "shipped", "payment": payment,
            "shipment": shipment}


@workflow
async def refund_order(ctx: ostinato.WorkflowContext, order_id: str) -> str:
    return f"refunded order {order_id}"


@workflow
async def sales_report(ctx: ostinato.WorkflowContext) -> str:
    """What a schedule starts: one run per firing, named after its fire time."""
    return f"report {ctx.info.workflow_id} at {ctx.now():%H:%M:%S}"


app = ostinato.App(
    workflows=[fulfil_order, refund_order, sales_report],
    activities=[reserve, release, charge, ship],
    triggers=[
        # one workflow per order id, however often the event is delivered
        EventTrigger(fulfil_order, source="shop", detail_type="OrderPlaced",
                     args=lambda event: [event["detail"]],
                     id=lambda event: f"order-{event['detail']['id']}"),
        EventTrigger(refund_order, source="shop", detail_type="OrderCancelled",
                     args=lambda event: [event["detail"]["id"]],
                     id=lambda event: f"refund-{event['detail']['id']}"),
    ],
)
