"""Limits are enforced with clear errors, never a stuck workflow (DESIGN.md §3.5)."""

from __future__ import annotations

import pytest

import ostinato
from ostinato import RetryPolicy
from ostinato._core import history as h
from ostinato._core.serde import MAX_PAYLOAD_BYTES
from tests.conftest import assert_history_sound
from tests.stored import head_item, item_bytes

#: Characters of a JSON string one byte over the payload limit (50 MiB; quotes count).
OVER_LIMIT = MAX_PAYLOAD_BYTES


@ostinato.activity(retry=RetryPolicy(maximum_attempts=3))
def huge_result() -> str:
    return "x" * OVER_LIMIT


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


def test_a_decision_too_large_for_one_transaction_keeps_running_with_a_reason(make_env,
                                                                             monkeypatch):
    # an offloaded batch may hold 128 MiB: lowered here so that ~6 MB of arguments is over it
    monkeypatch.setattr(h, "MAX_OFFLOADED_BATCH_BYTES", 5_000_000)
    env = make_env(app)
    handle = env.client.start_workflow("wide", 40, 150_000, id="huge")  # ~6 MB of arguments
    env.sleep(30)
    desc = handle.describe()
    assert desc.status == "RUNNING"
    assert "history batch" in desc.task_failure and "over the limit" in desc.task_failure


# -- payloads that would overflow the head, a message or an item (issue: limits never strand) --
@ostinato.workflow
async def returns(ctx, size: int, padding: str = ""):
    return "r" * size


@ostinato.workflow
async def passes_big_args(ctx, size: int):
    try:
        await ctx.execute_activity(blob_padded, 1, "a" * size)
    except ostinato.PayloadTooLargeError as err:
        return f"refused at the call: {err.what}"
    return "sent"


@ostinato.workflow
async def big_status(ctx, size: int):
    try:
        ctx.set_status("s" * size)
    except ostinato.PayloadTooLargeError:
        return "status refused"
    return "status set"


@ostinato.workflow
async def fails_with_huge_details(ctx):
    raise ostinato.ApplicationError("boom", details="d" * 500_000)


limits_app = ostinato.App(workflows=[returns, passes_big_args, big_status,
                                     fails_with_huge_details], activities=[blob_padded])


def head_item_bytes(env, workflow_id: str) -> int:
    """The head item's size as DynamoDB counts it: attribute names plus values (read from the
    environment's table, memory or moto)."""
    return item_bytes(head_item(env, workflow_id))


def test_a_450_kb_result_fails_the_workflow_with_the_reason_instead_of_stranding_it(make_env):
    """Review finding: a 250 KiB result after 199 KiB of arguments overflowed the head item
    after the history append; the run showed RUNNING forever. A result over the payload limit
    now fails the run (deterministically, in the replay core) before anything is written.
    (Since large payloads go to S3, the limit is 50 MiB.)"""
    env = make_env(limits_app)
    handle = env.client.start_workflow("returns", OVER_LIMIT, id="r450")
    with pytest.raises(ostinato.WorkflowFailedError, match=r"workflow result.*over the limit"):
        handle.result()
    desc = handle.describe()
    assert desc.status == "FAILED" and desc.task_failure is None
    assert env.handler_errors == []
    assert_history_sound(handle.history())


def test_large_args_and_a_large_result_keep_the_head_under_400_kb(make_env):
    env = make_env(limits_app)
    args_pad = "a" * (199 * 1024 - 20)  # the largest arguments a start accepts
    handle = env.client.start_workflow("returns", 190_000, args_pad, id="big-both")
    assert handle.result() == "r" * 190_000
    assert head_item_bytes(env, "big-both") < 300_000  # the result stayed in history
    assert handle.describe().result == "r" * 190_000   # ... and describe reads it from there
    (listed,) = env.client.list_workflows(status="COMPLETED")
    assert listed.result == "r" * 190_000


def test_oversized_activity_arguments_raise_in_the_workflow_at_the_call(make_env):
    env = make_env(limits_app)
    out = env.client.start_workflow("passes_big_args", OVER_LIMIT).result()
    assert out == "refused at the call: arguments of activity 'blob'"


def test_an_oversized_custom_status_is_refused_in_the_workflow(make_env):
    env = make_env(limits_app)
    assert env.client.start_workflow("big_status", 40_000).result() == "status refused"
    assert env.client.start_workflow("big_status", 1_000).result() == "status set"


def test_a_failure_with_huge_details_is_cut_to_fit(make_env):
    env = make_env(limits_app)
    handle = env.client.start_workflow("fails_with_huge_details", id="fhd")
    with pytest.raises(ostinato.WorkflowFailedError) as failed:
        handle.result()
    assert str(failed.value.cause) == "boom"
    error = handle.describe().error or {}
    assert error.get("details") is None and "too large" in error.get("details_dropped", "")
    assert head_item_bytes(env, "fhd") < 100_000
