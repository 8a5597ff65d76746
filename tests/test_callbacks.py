"""External completion: a workflow hands out a token and waits, for weeks if need be."""

from __future__ import annotations

from datetime import timedelta

import pytest

import ostinato
from ostinato import activity, workflow

outbox: list[str] = []


@activity
def send_link(token: str) -> None:
    outbox.append(token)  # e.g. an email with an approval link


@workflow
async def approval(ctx: ostinato.WorkflowContext, timeout_days: float,
                   heartbeat_hours: float | None = None) -> dict:
    cb = ctx.create_callback(timeout=timedelta(days=timeout_days),
                             heartbeat_timeout=heartbeat_hours and timedelta(hours=heartbeat_hours))
    await ctx.execute_activity(send_link, cb.token)
    try:
        decision = await cb
    except ostinato.CallbackError as err:
        return {"failed": str(err.cause), "token": cb.token}
    except TimeoutError as err:
        return {"timed_out": str(err), "token": cb.token}
    return {"decision": decision, "token": cb.token}


app = ostinato.App(workflows=[approval], activities=[send_link])


@pytest.fixture
def env(make_env):
    outbox.clear()
    return make_env(app)


def started(env, *args, id="a1"):
    handle = env.client.start_workflow("approval", *args, id=id)
    env.drain()
    assert len(outbox) == 1
    return handle, outbox[-1]


def test_completion_reaches_the_workflow_and_a_second_is_refused(env):
    handle, token = started(env, 30)
    env.sleep(timedelta(days=10))  # a human takes their time
    env.client.complete_callback(token, {"approved": True, "by": "ann"})
    result = handle.result()
    assert result == {"decision": {"approved": True, "by": "ann"}, "token": token}
    with pytest.raises(ostinato.CallbackClosedError):
        env.client.complete_callback(token, {"approved": False})
    with pytest.raises(ostinato.CallbackClosedError):
        env.client.fail_callback(token, "too late")
    events = [e.event_type for e in handle.history()]
    assert events.count("CallbackCompleted") == 1 and "CallbackFailed" not in events


def test_concurrent_completions_one_wins(env):
    handle, token = started(env, 30)
    env.client.complete_callback(token, "first")
    with pytest.raises(ostinato.CallbackClosedError):  # claimed, though not yet in history
        env.client.complete_callback(token, "second")
    assert handle.result()["decision"] == "first"


def test_failure_raises_callback_error_with_cause(env):
    handle, token = started(env, 30)
    env.client.fail_callback(token, {"message": "rejected by finance", "type": "Rejected"})
    assert handle.result()["failed"] == "rejected by finance"
    assert "CallbackFailed" in [e.event_type for e in handle.history()]


def test_timeout(env):
    handle, _ = started(env, 2)
    result = handle.result()
    assert "timed out" in result["timed_out"]
    timed = [e for e in handle.history() if e.event_type == "CallbackTimedOut"]
    assert timed[0].attributes["timeout_type"] == "timeout"


def test_heartbeats_extend_the_heartbeat_timeout(env):
    handle, token = started(env, 30, 1.0)
    for _ in range(5):  # 5 heartbeats 45 minutes apart: 3h45m alive on a 1h heartbeat timeout
        env.sleep(timedelta(minutes=45))
        env.client.heartbeat_callback(token)
    env.drain()
    assert handle.describe().status == "RUNNING"
    start = env.now()
    result = handle.result()  # now silent: times out an hour after the last heartbeat
    assert "heartbeat" in result["timed_out"]
    assert (env.now() - start).total_seconds() <= 3600 + 5


def test_tokens_are_unguessable_and_checked(env):
    _, token = started(env, 30)
    _, other = started(env, 30, id="a2") if outbox.clear() is None else (None, None)
    where, secret = token.rsplit(".", 1)
    assert len(secret) >= 22  # >= 128 random bits, urlsafe base64
    assert other.rsplit(".", 1)[1] != secret
    with pytest.raises(ostinato.CallbackNotFoundError):
        env.client.complete_callback(where + "." + "x" * len(secret), "forged")
    with pytest.raises(ostinato.CallbackNotFoundError):
        env.client.complete_callback("garbage", "forged")


def test_completing_a_callback_of_a_closed_workflow_is_refused(env):
    handle, token = started(env, 30)
    handle.terminate()
    env.drain()
    with pytest.raises(ostinato.WorkflowClosedError):
        env.client.complete_callback(token, "late")


def test_completion_retried_after_a_failed_claim_still_wakes_the_workflow(env):
    """Review finding: the retry's wake-up was deduplicated against the first attempt's."""
    handle, token = started(env, 30)
    store = env.runtime.store
    original = store.claim_callback
    store.claim_callback = lambda *a: (_ for _ in ()).throw(RuntimeError("throttled"))
    with pytest.raises(RuntimeError):
        env.client.complete_callback(token, "v1")  # its wake-up went out; its claim did not
    store.claim_callback = original
    env.sleep(120)  # the first wake-up finds no outcome, waits out its grace, is dropped
    env.client.complete_callback(token, "v2")
    assert handle.result()["decision"] == "v2"
