"""Human approval with a callback: the workflow mails a link and waits up to two weeks.

Against the local stack:

    .venv/bin/ostinato dev examples.approval:app
    .venv/bin/ostinato workflow start expense '{"who": "ann", "amount": 420}' --id exp-1
    .venv/bin/ostinato workflow query exp-1 link          # the token the approver received
    .venv/bin/ostinato callback complete TOKEN '{"approved": true, "by": "bob"}'
    #   or: curl -XPOST localhost:8787/callbacks/TOKEN -d '{"status": "success", "result": {...}}'
    .venv/bin/ostinato workflow result exp-1
"""

from __future__ import annotations

from datetime import timedelta

import ostinato
from ostinato import activity, workflow


@activity
def send_approval_request(claim: dict, token: str) -> str:
    # A real app would email a link such as https://approve.example.com/?token=...
    return f"asked approval for {claim['amount']} by {claim['who']}"


@activity
def pay(claim: dict) -> str:
    return f"paid {claim['amount']} to {claim['who']}"


@workflow
async def expense(ctx: ostinato.WorkflowContext, claim: dict) -> dict:
    approval = ctx.create_callback(timeout=timedelta(days=14))
    ctx.on_query("link", lambda: approval.token)
    ctx.set_status("awaiting approval")
    await ctx.execute_activity(send_approval_request, claim, approval.token)
    try:
        decision = await approval
    except TimeoutError:
        ctx.set_status("expired")
        return {"paid": False, "reason": "nobody approved within two weeks"}
    except ostinato.CallbackError as rejected:
        ctx.set_status("rejected")
        return {"paid": False, "reason": str(rejected.cause)}
    if not decision.get("approved"):
        return {"paid": False, "reason": f"declined by {decision.get('by')}"}
    ctx.set_status("paying")
    return {"paid": True, "receipt": await ctx.execute_activity(pay, claim),
            "approved_by": decision.get("by")}


app = ostinato.App(workflows=[expense], activities=[send_approval_request, pay])
