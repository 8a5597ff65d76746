"""Every workflow behaviour, end to end: client -> SQS (moto) -> handlers -> engine -> DynamoDB."""

from __future__ import annotations

from datetime import timedelta

import pytest

import ostinato
from tests.apps import core
from tests.conftest import assert_history_sound


@pytest.fixture
def env(make_env):
    core.reset()
    return make_env(core.app)


def types(handle) -> list[str]:
    return [e.event_type for e in handle.history()]


def test_sequential_activities_run_once_each_despite_replays(env):
    handle = env.client.start_workflow("sequential", 5, id="seq")
    assert handle.result() == [0, 1, 2, 3, 4]
    # The workflow was replayed from scratch 6 times; each activity still ran exactly once.
    assert [core.calls[f"echo:{i}"] for i in range(5)] == [1] * 5
    history = handle.history()
    assert_history_sound(history)
    assert types(handle).count("ActivityTaskScheduled") == 5
    assert history[-1].event_type == "WorkflowExecutionCompleted"


def test_fan_out_gathers_in_order(env):
    handle = env.client.start_workflow(core.fan_out, 20, id="fan")
    assert handle.result() == list(range(20))
    assert sum(core.calls[f"echo:{i}"] for i in range(20)) == 20
    assert_history_sound(handle.history())


def test_retry_backoff_uses_timers_and_records_one_final_event(env):
    start = env.clock()
    handle = env.client.start_workflow("call_activity", "flaky", 3, id="retry")
    assert handle.result() == {"ok": "ok on 3"}
    assert core.attempts_seen == [1, 2, 3]
    # back-off 2 s then 6 s (coefficient 3) in virtual time
    assert env.clock() - start >= 8
    history = handle.history()
    assert [e.event_type for e in history].count("ActivityTaskScheduled") == 1
    completed = [e for e in history if e.event_type == "ActivityTaskCompleted"]
    assert len(completed) == 1 and completed[0].attributes["attempt"] == 3


def test_retries_exhausted_raise_activity_error_with_cause(env):
    handle = env.client.start_workflow("call_activity", "flaky", 10, id="exhaust")
    result = handle.result()
    assert result["error"] == "ApplicationError" and "attempt 4 failed" in result["message"]
    assert core.attempts_seen == [1, 2, 3, 4]  # maximum_attempts=4
    failed = [e for e in handle.history() if e.event_type == "ActivityTaskFailed"]
    assert len(failed) == 1 and failed[0].attributes["attempt"] == 4


def test_maximum_interval_caps_backoff(env):
    # attempts 1..4 with 2 s initial, x3, capped at 10 s: waits 2, 6, 10 = 18 s
    start = env.clock()
    env.client.start_workflow("call_activity", "flaky", 4, id="cap").result()
    assert 18 <= env.clock() - start < 19


def test_non_retryable_error_types_stop_retries(env):
    result = env.client.start_workflow("call_activity", "bad_value", id="nr").result()
    assert result["type"] == "ValueError" and core.calls["bad_value"] == 1


def test_application_error_non_retryable_with_details(env):
    result = env.client.start_workflow("call_activity", "refuses", id="ae").result()
    assert result == {"error": "ApplicationError", "message": "no", "type": "Refused",
                      "details": {"why": "policy"}}
    assert core.calls["refuses"] == 1


def test_per_call_options_override_decorator(env):
    handle = env.client.start_workflow("with_overrides", id="ovr")
    with pytest.raises(ostinato.WorkflowFailedError) as failed:
        handle.result()
    assert isinstance(failed.value.cause, ostinato.ActivityError)
    assert isinstance(failed.value.cause.cause, ostinato.ApplicationError)
    assert core.attempts_seen == [1, 2]  # the call's maximum_attempts=2, not the decorator's 4


def test_async_activity(env):
    assert env.client.start_workflow("call_activity", "async_double", 4).result() == {"ok": 8}


def test_start_to_close_timeout_retries_then_times_out(env):
    handle = env.client.start_workflow("call_activity", "slow", id="stc")
    result = handle.result(timeout=30)
    assert result["error"] == "TimeoutError"
    assert core.calls["slow"] == 2
    assert "ActivityTaskTimedOut" in types(handle)


def test_heartbeat_timeout_and_details_resume_next_attempt(env):
    handle = env.client.start_workflow("call_activity", "beats", 6, id="hb")
    assert handle.result(timeout=30) == {"ok": 6}
    # attempt 1 heart-beat 1..3 then went silent; attempt 2 resumed from the saved 3
    assert core.heartbeat_resumed == [0, 3]


def test_schedule_to_close_timeout_stops_retrying(env):
    # attempts at 0 s, 10 s, 20 s; a fourth (at 30 s) would not fit the 30 s budget, so the
    # last failure is final (Temporal's behaviour), well before the budget's own timer.
    start = env.clock()
    result = env.client.start_workflow("call_activity", "always_fails", id="s2c").result()
    assert result["message"] == "down"
    assert core.calls["always_fails"] == 3
    assert 20 <= env.clock() - start <= 31


def test_local_activities_record_markers_and_retry(env):
    handle = env.client.start_workflow("local", 2, id="la")
    assert handle.result() == ["L", "ok on 2"]
    markers = [e for e in handle.history() if e.event_type == "MarkerRecorded"]
    assert [m.attributes["activity_type"] for m in markers] == ["echo", "flaky"]
    assert markers[1].attributes["attempt"] == 2
    assert "ActivityTaskScheduled" not in types(handle)
    assert core.calls["echo:L"] == 1 and core.calls["flaky"] == 2


def test_durable_sleep_and_asyncio_sleep_in_virtual_time(env):
    handle = env.client.start_workflow("sleeper", 3600.0, id="sleep")
    assert handle.result() == {"slept": 7200.0, "first": 3600.0} or \
        handle.result()["slept"] >= 7200
    assert types(handle).count("TimerFired") == 2


def test_long_timer_goes_through_eventbridge_scheduler(env):
    handle = env.client.start_workflow("long_timer", id="long")
    env.drain()
    schedules = env.scheduler.list_schedules(GroupName=env.settings.schedule_group)["Schedules"]
    assert len(schedules) == 1  # > 15 minutes: an at() schedule, not an SQS delay
    assert handle.result() == "after two days"
    assert env.schedules.fired == 1
    remaining = env.scheduler.list_schedules(GroupName=env.settings.schedule_group)
    assert remaining["Schedules"] == []  # deleted after firing


def test_wait_condition_released_by_signal(env):
    handle = env.client.start_workflow("waiter", 3600, id="w1")
    env.drain()
    handle.signal("go")
    assert handle.result() == "released"


def test_wait_condition_timeout(env):
    assert env.client.start_workflow("waiter", 60, id="w2").result() == "timed out"


def test_signals_buffered_in_order_and_consumed_once(env):
    handle = env.client.start_workflow("signals", id="sig")
    # all four arrive before the workflow first runs: buffered, consumed in arrival order
    for i in range(4):
        handle.signal("item", i)
    assert handle.result() == {"seen": [0, 1, 2, 3, "no more"]}


def test_query_answers_from_replayed_state(env):
    handle = env.client.start_workflow("signals", id="q")
    handle.signal("item", "a")
    handle.signal("item", "b")
    handle.signal("item", "c")
    env.drain()
    assert handle.query("seen") == ["a", "b", "c"]
    with pytest.raises(ostinato.QueryRejectedError, match="unknown query"):
        handle.query("nope")


def test_custom_status_and_deterministic_helpers(env):
    handle = env.client.start_workflow("statusful", id="st")
    env.drain()
    assert handle.describe().custom_status == {"stage": "two"}
    handle.signal("finish")
    result = handle.result()
    assert result["info"] == ["st", "statusful"]
    from ostinato._core.replay import replay_history

    # replaying the recorded history gives the very same random number, uuid and time
    batches = env.runtime.store.load_batches(handle.current_run_id())
    replayer = replay_history(core.app.workflow("statusful"), batches)
    assert replayer.instance.closed.result == result


def test_asyncio_wait_first_completed_wait_for_and_create_task(env):
    handle = env.client.start_workflow("racing", id="race")
    assert handle.result() == {"winner": "activity", "wait_for_timed_out": "yes", "task": 42}
    assert "TimerCanceled" in types(handle)
    assert_history_sound(handle.history())


def test_cancel_runs_compensation_then_cancels(env):
    handle = env.client.start_workflow("cancellable", id="c1")
    env.drain()
    handle.cancel()
    with pytest.raises(ostinato.WorkflowCancelledError):
        handle.result()
    assert core.calls["echo:compensated"] == 1
    assert handle.describe().status == "CANCELLED"
    assert types(handle)[-1] == "WorkflowExecutionCancelled"


def test_cancel_caught_and_returned(env):
    handle = env.client.start_workflow("cancel_then_return", id="c2")
    env.drain()
    handle.cancel()
    assert handle.result() == "cleaned up"
    assert handle.describe().status == "COMPLETED"


def test_terminate_closes_without_running_code(env):
    handle = env.client.start_workflow("cancellable", id="t1")
    env.drain()
    handle.terminate(reason="ops said so")
    with pytest.raises(ostinato.WorkflowTerminatedError) as err:
        handle.result()
    assert err.value.reason == "ops said so"
    assert core.calls["echo:compensated"] == 0
    assert handle.describe().status == "TERMINATED"
    with pytest.raises(ostinato.WorkflowClosedError):
        handle.signal("x")


def test_workflow_failure_modes(env):
    app_handle = env.client.start_workflow("failing", "app", id="f1")
    with pytest.raises(ostinato.WorkflowFailedError) as failed:
        app_handle.result()
    assert isinstance(failed.value.cause, ostinato.ApplicationError)
    assert failed.value.cause.type == "Rule" and failed.value.cause.details == {"n": 1}
    py_handle = env.client.start_workflow("failing", "py", id="f2")
    with pytest.raises(ostinato.WorkflowFailedError) as failed:
        py_handle.result()
    assert failed.value.cause.type == "KeyError"
    assert py_handle.describe().status == "FAILED"
    assert py_handle.describe().error["type"] == "KeyError"


def test_id_conflict_policies(env):
    first = env.client.start_workflow("waiter", 3600, id="dup")
    with pytest.raises(ostinato.WorkflowAlreadyStartedError):
        env.client.start_workflow("waiter", 3600, id="dup")
    same = env.client.start_workflow("waiter", 3600, id="dup", id_conflict_policy="use_existing")
    assert same.run_id == first.run_id
    first.signal("go")
    assert first.result() == "released"
    # a closed id may be started again: a new run
    again = env.client.start_workflow("waiter", 3600, id="dup")
    assert again.run_id != first.run_id
    env.drain()
    assert again.describe().status == "RUNNING"


def test_signal_with_start(env):
    handle = env.client.start_workflow("waiter", 3600, id="sws", start_signal="go")
    assert handle.result() == "released"


def test_unknown_things_are_refused_clearly(env):
    with pytest.raises(ostinato.UnknownTypeError):
        env.client.start_workflow("no_such_workflow")
    with pytest.raises(ostinato.WorkflowNotFoundError):
        env.client.get_workflow_handle("missing").describe()
    with pytest.raises(ostinato.PayloadTooLargeError):
        env.client.start_workflow("sequential", "x" * (50 * 1024 * 1024 + 1))
    with pytest.raises(ostinato.DataConversionError, match="cannot be encoded"):
        env.client.start_workflow("sequential", object())
    with pytest.raises(ValueError, match="workflow id"):
        env.client.start_workflow("sequential", 1, id="has space")
    # nothing was written for the refused starts
    assert list(env.client.list_workflows()) == []


def test_describe_and_list_by_status_and_type(env):
    done = env.client.start_workflow("sequential", 1, id="l1")
    done.result()
    env.client.start_workflow("waiter", 3600, id="l2")
    env.client.start_workflow("waiter", 3600, id="l3")
    env.drain()
    running = {d.workflow_id for d in env.client.list_workflows(status="RUNNING")}
    assert running == {"l2", "l3"}
    completed = list(env.client.list_workflows(status="COMPLETED"))
    assert [d.workflow_id for d in completed] == ["l1"] and completed[0].result == [0]
    waiters = {d.workflow_id for d in env.client.list_workflows(workflow_type="waiter")}
    assert waiters == {"l2", "l3"}
    both = list(env.client.list_workflows(status="RUNNING", workflow_type="sequential"))
    assert both == []
    desc = done.describe()
    assert desc.status == "COMPLETED" and desc.close_time >= desc.start_time
    assert len({d.workflow_id for d in env.client.list_workflows(page_size=1)}) == 3


def test_non_determinism_keeps_running_until_fixed(env, monkeypatch):
    handle = env.client.start_workflow("patched_shape", id="nd")
    env.drain()
    definition = core.app.workflows["patched_shape"]

    async def changed(ctx, *args):  # incompatible: a different activity first
        await ctx.execute_activity(core.async_double, 1)
        return "v2"

    broken = type(definition)(definition.name, changed)
    monkeypatch.setitem(core.app.workflows, "patched_shape", broken)
    handle.signal("next")
    env.sleep(timedelta(seconds=30))
    desc = handle.describe()
    assert desc.status == "RUNNING"
    assert "non-determinism" in (desc.task_failure or "")
    monkeypatch.setitem(core.app.workflows, "patched_shape", definition)  # fixed code deployed
    assert handle.result() == "v1"
    assert handle.describe().task_failure is None
    assert_history_sound(handle.history())
