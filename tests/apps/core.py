"""Workflows and activities exercising every engine behaviour; counters prove what ran."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import ostinato
from ostinato import ApplicationError, RetryPolicy, activity, activity_context, workflow

calls: Counter[str] = Counter()
attempts_seen: list[int] = []
heartbeat_resumed: list[Any] = []


def reset() -> None:
    calls.clear()
    attempts_seen.clear()
    heartbeat_resumed.clear()


@activity
def echo(x: Any) -> Any:
    calls[f"echo:{x}"] += 1
    return x


@activity
async def async_double(x: int) -> int:
    calls["async_double"] += 1
    await asyncio.sleep(0)
    return 2 * x


@activity(retry=RetryPolicy(maximum_attempts=4, initial_interval=timedelta(seconds=2),
                            backoff_coefficient=3.0, maximum_interval=timedelta(seconds=10)))
def flaky(succeed_on: int) -> str:
    info = activity_context().info
    attempts_seen.append(info.attempt)
    calls["flaky"] += 1
    if info.attempt < succeed_on:
        raise RuntimeError(f"attempt {info.attempt} failed")
    return f"ok on {info.attempt}"


@activity(retry=RetryPolicy(maximum_attempts=5, non_retryable_error_types=["ValueError"]))
def bad_value() -> None:
    calls["bad_value"] += 1
    raise ValueError("never valid")


@activity(retry=RetryPolicy(maximum_attempts=5))
def refuses() -> None:
    calls["refuses"] += 1
    raise ApplicationError("no", type="Refused", non_retryable=True, details={"why": "policy"})


@activity(start_to_close_timeout=0.2, retry=RetryPolicy(maximum_attempts=2))
def slow() -> str:
    calls["slow"] += 1
    import time

    time.sleep(1.0)
    return "late"


@activity(heartbeat_timeout=1.0, retry=RetryPolicy(maximum_attempts=2))
def beats(total: int) -> int:
    ctx = activity_context()
    start = ctx.heartbeat_details or 0
    heartbeat_resumed.append(start)
    import time

    for i in range(start, total):
        ctx.heartbeat(i + 1)
        if ctx.info.attempt == 1 and i == 2:
            time.sleep(3.0)  # goes silent: the heartbeat timeout fails this attempt
    return total


@activity(schedule_to_close_timeout=timedelta(seconds=30),
          retry=RetryPolicy(initial_interval=timedelta(seconds=10), backoff_coefficient=1.0))
def always_fails() -> None:
    calls["always_fails"] += 1
    raise RuntimeError("down")


@workflow
async def sequential(ctx: ostinato.WorkflowContext, n: int) -> list[Any]:
    return [await ctx.execute_activity(echo, i) for i in range(n)]


@workflow
async def fan_out(ctx: ostinato.WorkflowContext, n: int) -> list[Any]:
    return list(await asyncio.gather(*(ctx.execute_activity(echo, i) for i in range(n))))


@workflow
async def call_activity(ctx: ostinato.WorkflowContext, name: str, *args: Any) -> Any:
    try:
        return {"ok": await ctx.execute_activity(name, *args)}
    except ostinato.ActivityError as err:
        cause = err.cause
        return {"error": type(cause).__name__, "message": str(cause),
                "type": getattr(cause, "type", None), "details": getattr(cause, "details", None)}


@workflow
async def with_overrides(ctx: ostinato.WorkflowContext) -> Any:
    return await ctx.execute_activity(
        flaky, 3, retry=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=1)))


@workflow
async def local(ctx: ostinato.WorkflowContext, succeed_on: int) -> Any:
    first = await ctx.execute_local_activity(echo, "L")
    second = await ctx.execute_local_activity(flaky, succeed_on)
    return [first, second]


@workflow
async def sleeper(ctx: ostinato.WorkflowContext, seconds: float) -> dict[str, Any]:
    before = ctx.now()
    await ctx.sleep(seconds)
    middle = ctx.now()
    await asyncio.sleep(seconds)
    after = ctx.now()
    return {"slept": (after - before).total_seconds(), "first": (middle - before).total_seconds()}


@workflow
async def waiter(ctx: ostinato.WorkflowContext, timeout: float) -> str:
    state = {"go": False}
    ctx.on_signal("go", lambda: state.update(go=True))
    try:
        await ctx.wait_condition(lambda: state["go"], timeout=timeout)
    except TimeoutError:
        return "timed out"
    return "released"


@workflow
async def signals(ctx: ostinato.WorkflowContext) -> dict[str, Any]:
    seen: list[Any] = []
    ctx.on_query("seen", lambda: list(seen))
    first = await ctx.wait_for_signal("item")
    second = await ctx.wait_for_signal("item")
    seen.extend([first, second])
    ctx.on_signal("item", lambda x: seen.append(x))
    await ctx.wait_condition(lambda: len(seen) >= 4)
    try:
        await ctx.wait_for_signal("never", timeout=60)
    except TimeoutError:
        seen.append("no more")
    return {"seen": seen}


@workflow
async def statusful(ctx: ostinato.WorkflowContext) -> dict[str, Any]:
    ctx.set_status({"stage": "one"})
    await ctx.execute_activity(echo, "s1")
    ctx.set_status({"stage": "two"})
    await ctx.wait_for_signal("finish")
    return {"rand": ctx.random().randint(0, 10**9), "uuid": str(ctx.uuid4()),
            "now": ctx.now().isoformat(), "info": [ctx.info.workflow_id, ctx.info.workflow_type]}


@workflow
async def racing(ctx: ostinato.WorkflowContext) -> dict[str, Any]:
    slow_timer = asyncio.ensure_future(ctx.sleep(3600))
    quick = asyncio.ensure_future(ctx.execute_activity(echo, "quick"))
    done, pending = await asyncio.wait({slow_timer, quick}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    winner = "activity" if quick in done else "timer"
    try:
        await asyncio.wait_for(ctx.wait_for_signal("never"), timeout=5)
        timed = "no"
    except TimeoutError:
        timed = "yes"
    task = asyncio.create_task(ctx.execute_activity(async_double, 21))
    return {"winner": winner, "wait_for_timed_out": timed, "task": await task}


@workflow
async def cancellable(ctx: ostinato.WorkflowContext) -> str:
    try:
        await ctx.sleep(timedelta(days=30))
    except asyncio.CancelledError:
        await ctx.execute_activity(echo, "compensated")
        raise
    return "not cancelled"


@workflow
async def cancel_then_return(ctx: ostinato.WorkflowContext) -> str:
    try:
        await ctx.wait_for_signal("never")
    except asyncio.CancelledError:
        return "cleaned up"
    return "unreachable"


@workflow
async def failing(ctx: ostinato.WorkflowContext, kind: str) -> None:
    await ctx.execute_activity(echo, "before")
    if kind == "app":
        raise ApplicationError("business rule broken", type="Rule", details={"n": 1})
    raise KeyError("plain python error")


@workflow
async def long_timer(ctx: ostinato.WorkflowContext) -> str:
    await ctx.sleep(timedelta(days=2))
    return await ctx.execute_activity(echo, "after two days")


@workflow
async def patched_shape(ctx: ostinato.WorkflowContext) -> str:
    await ctx.execute_activity(echo, "a")
    await ctx.wait_for_signal("next")
    await ctx.execute_activity(echo, "b")
    return "v1"


app = ostinato.App(
    workflows=[sequential, fan_out, call_activity, with_overrides, local, sleeper, waiter,
               signals, statusful, racing, cancellable, cancel_then_return, failing,
               long_timer, patched_shape],
    activities=[echo, async_double, flaky, bad_value, refuses, slow, beats, always_fails],
)
