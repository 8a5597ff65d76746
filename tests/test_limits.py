"""Limits are enforced with clear errors, never a stuck workflow (DESIGN.md §3.5)."""

from __future__ import annotations

import pytest

import ostinato
from ostinato import RetryPolicy
from tests.conftest import assert_history_sound


@ostinato.activity(retry=RetryPolicy(maximum_attempts=3))
def huge_result() -> str:
    return "x" * 300_000


@ostinato.activity
def blob(i: int) -> int:
    return i


@ostinato.workflow
async def calls(ctx, name: str, *args):
    try:
        return await ctx.execute_activity(name, *args)
    except ostinato.ActivityError as err:
        return {"error": str(err.cause), "type": getattr(err.cause, "type", None)}


@ostinato.workflow
async def wide(ctx, n: int, size: int):
    import asyncio

    pad = "p" * size
    results = await asyncio.gather(*(ctx.execute_activity("blob", i, pad) for i in range(n)))
    return len(results)


@ostinato.activity(name="blob")
def blob_padded(i: int, pad: str) -> int:
    return i


@ostinato.workflow
async def elsewhere(ctx):
    return await ctx.execute_activity(blob, 1, task_queue="gpu")


app = ostinato.App(workflows=[calls, wide, elsewhere], activities=[huge_result, blob_padded])


@pytest.fixture
def env(make_env):
    return make_env(app)


def test_oversized_activity_result_fails_without_retry(env):
    result = env.client.start_workflow("calls", "huge_result").result()
    assert "over the limit" in result["error"]


def test_unknown_activity_type_fails_clearly(env):
    result = env.client.start_workflow("calls", "no_such_activity").result()
    assert "unknown activity type 'no_such_activity'" in result["error"]


def test_history_batch_over_one_item_is_split_atomically(env):
    # 60 activities x 8 KB arguments: ~480 KB of events in one decision, over DynamoDB's
    # 400 KB item limit: written as several items in one transaction, read back whole.
    handle = env.client.start_workflow("wide", 60, 8_000, id="wide")
    assert handle.result() == 60
    history = handle.history()
    assert_history_sound(history)
    assert sum(e.event_type == "ActivityTaskScheduled" for e in history) == 60


def test_unconfigured_task_queue_keeps_the_workflow_running_with_a_reason(env):
    handle = env.client.start_workflow("elsewhere", id="gpu")
    env.sleep(30)
    desc = handle.describe()
    assert desc.status == "RUNNING"
    assert "no SQS queue configured for task queue 'gpu'" in desc.task_failure


@ostinato.activity
def emoji(n: int) -> str:
    return "🎼" * n


@ostinato.workflow
async def wide_unicode(ctx, n: int):
    import asyncio

    return sum(len(r) for r in await asyncio.gather(
        *(ctx.execute_activity("emoji", 40_000) for _ in range(n))))


unicode_app = ostinato.App(workflows=[wide_unicode], activities=[emoji])


def test_non_ascii_results_are_split_by_bytes(make_env):
    # 3 results of 40k four-byte characters (160 KB each) land in one batch: split by
    # characters into 300k-character chunks they would make a 1.2 MB item.
    env = make_env(unicode_app)
    assert env.client.start_workflow("wide_unicode", 3).result() == 120_000


def test_a_decision_too_large_for_one_transaction_keeps_running_with_a_reason(env):
    handle = env.client.start_workflow("wide", 40, 150_000, id="huge")  # ~6 MB of arguments
    env.sleep(30)
    desc = handle.describe()
    assert desc.status == "RUNNING"
    assert "history batch" in desc.task_failure and "over the limit" in desc.task_failure
