"""A quick app for the `ostinato dev` end-to-end tests: activities, signals, queries, a timer,
an update and a callback."""

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


@workflow
async def ticket(ctx: ostinato.WorkflowContext, title: str) -> dict:
    """Collect notes (an update) until someone completes the ticket's callback."""
    notes: list[str] = []
    done = ctx.create_callback()

    def check(text: str) -> None:
        if not text:
            raise ValueError("a note must not be empty")

    def note(text: str) -> list[str]:
        notes.append(text)
        return list(notes)

    ctx.on_update("note", note, validator=check)
    ctx.on_query("token", lambda: done.token)
    decision = await done
    return {"title": title, "notes": notes, "decision": decision}


app = ostinato.App(workflows=[approval, nap, ticket], activities=[shout])
