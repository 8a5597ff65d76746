"""Guarded activity attempts (a start_to_close or heartbeat timeout) run in reused worker
threads: an abandoned attempt keeps its thread while the next attempts run in others, each
attempt starts with nothing an earlier one set in its context, and `activity_context()` and
async activities work there, through the real handlers of the test environment."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import ostinato
from ostinato import RetryPolicy, activity, activity_context, workflow
from ostinato._core import activity as _activity

mark: contextvars.ContextVar[str] = contextvars.ContextVar("test_guard_mark")
seen: dict[str, Any] = {}
released = threading.Event()  # lets the abandoned attempt 1 of `stuck` finish
finished = threading.Event()  # set once it has


@activity(start_to_close_timeout=5.0)
def marks(i: int) -> str:
    before = mark.get("unset")
    mark.set(f"set by {i}")
    return f"{before} {activity_context().info.activity_id}"


@activity(start_to_close_timeout=0.3, retry=RetryPolicy(maximum_attempts=2))
def stuck() -> str:
    ctx = activity_context()
    if ctx.info.attempt == 1:
        released.wait(10)  # overruns: abandoned while still running
        try:
            ctx.heartbeat("late")
        except TimeoutError as exc:
            seen["late_heartbeat"] = str(exc)
        finally:
            finished.set()
        return "late"
    seen["attempt_2_thread"] = threading.current_thread().ident
    return f"attempt {ctx.info.attempt}"


@activity(heartbeat_timeout=5.0)
async def async_guarded(x: int) -> int:
    activity_context().heartbeat(x)
    return x * 2


@workflow
async def sequence(ctx: ostinato.WorkflowContext, n: int) -> list[str]:
    return [await ctx.execute_activity(marks, i) for i in range(n)]


@workflow
async def overrun(ctx: ostinato.WorkflowContext) -> str:
    return str(await ctx.execute_activity(stuck))


@workflow
async def run_async(ctx: ostinato.WorkflowContext, x: int) -> int:
    return int(await ctx.execute_activity(async_guarded, x))


APP = ostinato.App(workflows=[sequence, overrun, run_async],
                   activities=[marks, stuck, async_guarded])


def test_each_guarded_attempt_starts_with_a_fresh_context(make_env):
    env = make_env(APP)
    result = env.client.start_workflow(sequence, 5, id="marks").result(timeout=30)
    assert result == [f"unset {seq}" for seq in range(1, 6)]


def test_an_abandoned_attempt_keeps_its_thread_and_the_retry_runs_beside_it(make_env):
    env = make_env(APP)
    released.clear()
    finished.clear()
    handle = env.client.start_workflow(overrun, id="overrun")
    assert handle.result(timeout=30) == "attempt 2"  # while attempt 1 still waits
    assert not finished.is_set()
    assert seen["attempt_2_thread"] != threading.get_ident()
    released.set()
    assert finished.wait(10)
    assert "was abandoned" in seen["late_heartbeat"]
    assert env.client.start_workflow(sequence, 2, id="after").result(timeout=30) == [
        "unset 1", "unset 2"]  # the pool still serves attempts after one was abandoned


def test_async_activity_with_a_timeout_runs_in_a_worker(make_env):
    env = make_env(APP)
    assert env.client.start_workflow(run_async, 21, id="async").result(timeout=30) == 42


def test_the_pool_reuses_idle_workers():
    pool = _activity._WorkerPool(max_idle=2)
    threads = []
    for _ in range(5):
        job = _activity._Job(threading.get_ident, "probe")
        pool.submit(job)
        assert job.done.acquire(timeout=5)
        threads.append(job.result)
    assert len(set(threads)) == 1 and threads[0] != threading.get_ident()


def test_a_guarded_attempt_sees_what_its_caller_set(make_env):
    """The attempt runs in a copy of its caller's context: what the handler's thread set (log
    keys, the fault injector's scope) holds inside, and what the attempt sets stays there."""
    env = make_env(APP)
    token = mark.set("set by the caller")
    try:
        result = env.client.start_workflow(sequence, 2, id="inherits").result(timeout=30)
    finally:
        mark.reset(token)
    assert result == [f"set by the caller {seq}" for seq in range(1, 3)]
