"""Activity cancellation reaches running attempts, end to end (DESIGN §2 "Inside an activity").

The workflow cancels the task awaiting an activity (or the workflow itself is cancelled); the
decider records ActivityTaskCancelRequested and, after that append, raises the activity's
cancel flag through the outbox; the attempt's next heartbeat write reads it back and
`heartbeat()` raises `ActivityCancelledError`; escaping, it is reported as ActivityTaskCanceled.

The environment runs one handler at a time, so a running attempt cannot see a decider run
beside it by itself. The activities here call hooks between heartbeats, and those hooks do
what concurrent Lambdas would do meanwhile: send the signal or cancel, and run the
workflow-task handler (`decide`), the real one, through the real queue.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import ostinato
from ostinato import ActivityCancelledError, ApplicationError, RetryPolicy
from ostinato._core import eventfmt, wire
from ostinato._local.faults import Call, FaultInjector
from ostinato._local.retrying import ATTEMPTS
from ostinato.testing import WorkflowEnvironment
from tests.conftest import assert_history_sound

#: run between heartbeats, in order: one per heartbeat (the activity passes its context)
hooks: list[Callable[[ostinato.ActivityContext], None]] = []
#: what the activities saw: (activity, attempt, heartbeat index, is_cancelled, outcome)
seen: list[tuple[str, int, int, bool, str]] = []
BEATS = 12


@ostinato.activity
def beater(mode: str) -> str:
    """Heartbeats BEATS times; on cancellation: re-raise ("raise"), return ("return") or
    raise something else ("fail")."""
    ctx = ostinato.activity_context()
    i = -1
    try:
        for i in range(BEATS):
            ctx.heartbeat(i)
            if hooks:
                hooks.pop(0)(ctx)
    except ActivityCancelledError:
        seen.append(("beater", ctx.info.attempt, i, ctx.is_cancelled, "cancelled"))
        if mode == "return":
            return "stopped early"
        if mode == "fail":
            raise ApplicationError("cleanup failed") from None
        raise
    seen.append(("beater", ctx.info.attempt, i, ctx.is_cancelled, "finished"))
    return "finished"


@ostinato.activity
async def async_beater() -> str:
    """An async activity: heartbeat() raises in the coroutine the same way."""
    ctx = ostinato.activity_context()
    i = -1
    try:
        for i in range(BEATS):
            ctx.heartbeat(i)
            await asyncio.sleep(0)
            if hooks:
                hooks.pop(0)(ctx)
    except ActivityCancelledError:
        seen.append(("async_beater", ctx.info.attempt, i, ctx.is_cancelled, "cancelled"))
        raise
    return "finished"


@ostinato.activity
def quiet() -> str:
    """Never heartbeats: it cannot learn of a cancellation."""
    ctx = ostinato.activity_context()
    while hooks:
        hooks.pop(0)(ctx)
    seen.append(("quiet", ctx.info.attempt, -1, ctx.is_cancelled, "finished"))
    return "done anyway"


@ostinato.activity(retry=RetryPolicy(initial_interval=timedelta(seconds=60),
                                     maximum_attempts=5))
def fails_first() -> str:
    ctx = ostinato.activity_context()
    seen.append(("fails_first", ctx.info.attempt, -1, ctx.is_cancelled, "ran"))
    if ctx.info.attempt == 1:
        raise ApplicationError("first attempt fails")
    return "second attempt"


@ostinato.workflow
async def cancels_its_activity(ctx: ostinato.WorkflowContext, activity: str, mode: list[Any],
                               cancellation_type: str, options: dict[str, Any]) -> Any:
    """Cancels the activity's task on signal "stop"; closes on signal "finish"."""
    ctx.set_status("running")
    task = asyncio.create_task(ctx.execute_activity(activity, *mode,
                                                    cancellation_type=cancellation_type,
                                                    **options))
    await ctx.wait_for_signal("stop")
    task.cancel()
    outcome: dict[str, Any]
    try:
        outcome = {"result": await task}
    except asyncio.CancelledError:
        outcome = {"cancelled": True}
    except ostinato.ActivityError as exc:
        outcome = {"error": type(exc.cause).__name__, "message": str(exc.cause)}
    ctx.set_status(outcome)
    await ctx.wait_for_signal("finish")
    return outcome


@ostinato.workflow
async def awaits_its_activity(ctx: ostinato.WorkflowContext, cancellation_type: str) -> Any:
    """Awaits the activity directly: cancelling the workflow cancels it."""
    try:
        return await ctx.execute_activity(beater, "raise", cancellation_type=cancellation_type)
    except asyncio.CancelledError:
        ctx.set_status("compensating")
        raise


@ostinato.workflow
async def cancels_after(ctx: ostinato.WorkflowContext, delay: float) -> Any:
    """Cancels a retrying activity after `delay` seconds, then stays open for two minutes."""
    task = asyncio.create_task(ctx.execute_activity(fails_first))
    await ctx.sleep(delay)
    task.cancel()
    try:
        outcome: Any = await task
    except asyncio.CancelledError:
        outcome = "cancelled"
    await ctx.sleep(120)
    return outcome


@ostinato.workflow
async def cancels_at_once(ctx: ostinato.WorkflowContext) -> Any:
    """Schedules and cancels in one workflow task, then stays open until signal "finish"."""
    task = asyncio.create_task(ctx.execute_activity(beater, "raise"))
    await asyncio.sleep(0)  # the task runs up to its await: the activity is scheduled
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await ctx.wait_for_signal("finish")
    return "cancelled"


app = ostinato.App(workflows=[cancels_its_activity, awaits_its_activity, cancels_after,
                              cancels_at_once],
                   activities=[beater, async_beater, quiet, fails_first])


@pytest.fixture
def env(make_env: Any) -> WorkflowEnvironment:
    hooks.clear()
    seen.clear()
    environment: WorkflowEnvironment = make_env(app)
    environment.engine.activities.heartbeat_throttle = 0.0  # every heartbeat writes
    return environment


@pytest.fixture
def moto_env(make_env: Any) -> WorkflowEnvironment:
    """For the tests that inject faults at botocore (the moto backend's AWS calls)."""
    hooks.clear()
    seen.clear()
    environment: WorkflowEnvironment = make_env(app, backend="moto")
    environment.engine.activities.heartbeat_throttle = 0.0
    return environment


def decide(env: WorkflowEnvironment, advance: float = 0.0) -> None:
    """Run the workflow-task handler on what its queue holds (as a concurrent Lambda would)."""
    if advance:
        env.clock.advance_to(env.clock() + advance)  # type: ignore[attr-defined]
    pollers = [p for p in env.pollers if p.mapping.handler.startswith("functions.workflow_task")]
    while sum(p.poll() for p in pollers):
        pass


def types(handle: Any) -> list[str]:
    return [e.event_type for e in handle.history()]


def events(handle: Any, event_type: str) -> list[Any]:
    return [e for e in handle.history() if e.event_type == event_type]


def start(env: WorkflowEnvironment, wid: str, cancellation_type: str, mode: str = "raise",
          activity: str = "beater", **options: Any) -> Any:
    """Start `cancels_its_activity` on `activity` (only "beater" takes the mode)."""
    args = [mode] if activity == "beater" else []
    return env.client.start_workflow(cancels_its_activity, activity, args, cancellation_type,
                                     options, id=wid)


def stop(handle: Any, env: WorkflowEnvironment) -> Callable[[ostinato.ActivityContext], None]:
    """A hook: the workflow receives "stop" and its decider runs."""
    def hook(ctx: ostinato.ActivityContext) -> None:
        handle.signal("stop")
        decide(env)
    return hook


def finish(handle: Any, env: WorkflowEnvironment) -> Any:
    env.drain()
    handle.signal("finish")
    return handle.result()


# -- the three cancellation types ------------------------------------------------------------
def test_try_cancel_raises_at_the_next_heartbeat_and_the_workflow_moves_on_at_once(env):
    handle = start(env, "try", "try_cancel")
    moved_on: list[Any] = []

    def stop_and_look(ctx: ostinato.ActivityContext) -> None:
        stop(handle, env)(ctx)
        moved_on.append(handle.describe().custom_status)  # before the activity heard of it
        moved_on.append(ctx.is_cancelled)

    hooks.append(stop_and_look)
    assert finish(handle, env) == {"cancelled": True}
    assert moved_on == [{"cancelled": True}, False]
    assert seen == [("beater", 1, 1, True, "cancelled")]  # the very next heartbeat raised
    history = handle.history()
    assert_history_sound(history)
    order = [t for t in types(handle) if t.startswith("Activity")]
    assert order == ["ActivityTaskScheduled", "ActivityTaskCancelRequested",
                     "ActivityTaskCanceled"]
    assert events(handle, "ActivityTaskCanceled")[0].attributes == {"seq": 1, "attempt": 1}
    assert env.runtime.store.heartbeat_state(handle.current_run_id(), 1) == (1, True)
    assert not env.handler_errors


def test_wait_cancellation_completed_resolves_only_when_the_activity_reports(env):
    handle = start(env, "wait", "wait_cancellation_completed")
    during: list[Any] = []

    def stop_and_look(ctx: ostinato.ActivityContext) -> None:
        stop(handle, env)(ctx)
        during.append(handle.describe().custom_status)
        during.append("ActivityTaskCancelRequested" in types(handle))

    hooks.append(stop_and_look)
    assert finish(handle, env) == {"cancelled": True}
    assert during == ["running", True]  # requested, and the workflow still waits
    assert seen == [("beater", 1, 1, True, "cancelled")]
    assert_history_sound(handle.history())
    kinds = types(handle)
    canceled = kinds.index("ActivityTaskCanceled")
    assert kinds.index("ActivityTaskCancelRequested") < canceled
    assert kinds.index("WorkflowExecutionCompleted") > canceled


def test_abandon_sends_no_request_and_the_activity_runs_on_unaware(env):
    handle = start(env, "abandon", "abandon")
    during: list[Any] = []

    def stop_and_look(ctx: ostinato.ActivityContext) -> None:
        stop(handle, env)(ctx)
        during.append(handle.describe().custom_status)

    hooks.append(stop_and_look)
    assert finish(handle, env) == {"cancelled": True}
    assert during == [{"cancelled": True}]  # the await raised at once
    assert seen == [("beater", 1, BEATS - 1, False, "finished")]  # never told
    kinds = types(handle)
    assert "ActivityTaskCancelRequested" not in kinds and "ActivityTaskCanceled" not in kinds
    assert events(handle, "ActivityTaskCompleted")[0].attributes["result"] == "finished"
    assert env.runtime.store.heartbeat_state(handle.current_run_id(), 1) == (BEATS - 1, False)


# -- an activity that catches the cancellation -----------------------------------------------
def test_wait_cancellation_completed_gets_the_result_of_an_activity_that_returns_anyway(env):
    handle = start(env, "wait-return", "wait_cancellation_completed", mode="return")
    hooks.append(stop(handle, env))
    assert finish(handle, env) == {"result": "stopped early"}
    assert seen == [("beater", 1, 1, True, "cancelled")]
    kinds = types(handle)
    assert "ActivityTaskCanceled" not in kinds
    assert kinds.index("ActivityTaskCancelRequested") < kinds.index("ActivityTaskCompleted")


def test_a_failure_after_the_cancel_request_is_final_not_retried(env):
    handle = start(env, "wait-fail", "wait_cancellation_completed", mode="fail")
    hooks.append(stop(handle, env))
    outcome = finish(handle, env)
    assert outcome == {"error": "ApplicationError", "message": "cleanup failed"}
    assert [s[1] for s in seen] == [1]  # one attempt, though the default policy retries forever
    failed = events(handle, "ActivityTaskFailed")
    assert len(failed) == 1 and failed[0].attributes["attempt"] == 1


def test_try_cancel_ignores_the_late_result_of_an_activity_that_returns_anyway(env):
    handle = start(env, "try-return", "try_cancel", mode="return")
    hooks.append(stop(handle, env))
    assert finish(handle, env) == {"cancelled": True}
    completed = events(handle, "ActivityTaskCompleted")
    assert [e.attributes["result"] for e in completed] == ["stopped early"]  # recorded, ignored
    assert not env.handler_errors


# -- the workflow itself cancelled -------------------------------------------------------------
def test_cancelling_the_workflow_cancels_its_awaited_activity_try_cancel(env):
    handle = env.client.start_workflow(awaits_its_activity, "try_cancel", id="wf-try")
    status: list[str] = []

    def cancel(ctx: ostinato.ActivityContext) -> None:
        handle.cancel()
        decide(env)
        status.append(handle.describe().status)

    hooks.append(cancel)
    env.drain()
    with pytest.raises(ostinato.WorkflowCancelledError):
        handle.result()
    assert status == ["CANCELLED"]  # closed before the activity learned of it
    assert seen == [("beater", 1, 1, True, "cancelled")]
    kinds = types(handle)
    assert kinds[-3:] == ["WorkflowExecutionCancelRequested", "ActivityTaskCancelRequested",
                          "WorkflowExecutionCancelled"]
    assert handle.describe().custom_status == "compensating"


def test_cancelling_the_workflow_waits_for_its_activity_wait_cancellation_completed(env):
    handle = env.client.start_workflow(awaits_its_activity, "wait_cancellation_completed",
                                       id="wf-wait")
    status: list[str] = []

    def cancel(ctx: ostinato.ActivityContext) -> None:
        handle.cancel()
        decide(env)
        status.append(handle.describe().status)

    hooks.append(cancel)
    env.drain()
    with pytest.raises(ostinato.WorkflowCancelledError):
        handle.result()
    assert status == ["RUNNING"]
    kinds = types(handle)
    assert kinds[-4:] == ["WorkflowExecutionCancelRequested", "ActivityTaskCancelRequested",
                          "ActivityTaskCanceled", "WorkflowExecutionCancelled"]
    assert_history_sound(handle.history())


def test_a_terminated_workflows_running_activity_learns_at_its_next_heartbeat(env):
    handle = start(env, "terminated", "try_cancel")

    def terminate(ctx: ostinato.ActivityContext) -> None:
        handle.terminate(reason="enough")
        decide(env)

    hooks.append(terminate)
    env.drain()
    assert handle.describe().status == "TERMINATED"
    assert seen == [("beater", 1, 1, True, "cancelled")]  # told, though no code ran
    assert types(handle)[-1] == "WorkflowExecutionTerminated"  # its report found it closed
    assert not env.handler_errors


# -- what cannot hear, what waits, what is throttled -------------------------------------------
def test_an_activity_that_never_heartbeats_finishes_and_its_late_result_is_ignored(env):
    handle = start(env, "quiet", "try_cancel", activity="quiet")
    hooks.append(stop(handle, env))
    assert finish(handle, env) == {"cancelled": True}
    assert seen == [("quiet", 1, -1, False, "finished")]
    kinds = types(handle)
    assert kinds.index("ActivityTaskCancelRequested") < kinds.index("ActivityTaskCompleted")
    assert not env.handler_errors


def test_a_cancel_request_between_attempts_cancels_the_retry(env):
    handle = env.client.start_workflow(cancels_after, 10, id="between")
    assert handle.result() == "cancelled"
    assert [(s[0], s[1]) for s in seen] == [("fails_first", 1)]  # attempt 2 never ran
    canceled = events(handle, "ActivityTaskCanceled")
    # seq 2: the task scheduling the activity first runs once the timer (seq 1) is started
    assert len(canceled) == 1 and canceled[0].attributes == {"seq": 2, "attempt": 1}
    kinds = types(handle)
    assert kinds.index("ActivityTaskCancelRequested") < kinds.index("ActivityTaskCanceled")
    assert "ActivityTaskFailed" not in kinds
    assert_history_sound(handle.history())


def test_an_activity_scheduled_and_cancelled_in_one_task_stops_at_its_first_heartbeat(env):
    handle = env.client.start_workflow(cancels_at_once, id="at-once")
    assert finish(handle, env) == "cancelled"
    first = handle.history()[:4]
    assert [e.event_type for e in first[1:]] == ["ActivityTaskScheduled",
                                                 "ActivityTaskCancelRequested",
                                                 "ActivityTaskCanceled"]
    decided = env.runtime.store.load_batches(handle.current_run_id())[0]  # one decision
    assert [e[0] for e in decided.events][1:] == ["ActivityTaskScheduled",
                                                  "ActivityTaskCancelRequested"]
    assert [type(e) for e in decided.outbox] == [wire.SendActivity, wire.CancelActivity]
    assert seen == [("beater", 1, 0, True, "cancelled")]


def test_a_throttled_heartbeat_learns_at_the_next_write(env):
    throttle = env.engine.activities.heartbeat_throttle = 2.0
    handle = start(env, "throttled", "try_cancel")
    learned: list[bool] = []
    began: list[float] = []

    def stop_timed(ctx: ostinato.ActivityContext) -> None:
        began.append(time.monotonic())  # heartbeat 0 was written just now
        stop(handle, env)(ctx)

    def inside_the_window(ctx: ostinato.ActivityContext) -> None:
        assert time.monotonic() - began[0] < throttle, "the decider took longer than a window"
        learned.append(ctx.is_cancelled)  # heartbeat 1 wrote nothing, so read nothing
        time.sleep(max(0.0, throttle - (time.monotonic() - began[0])) + 0.05)

    hooks.extend([stop_timed, inside_the_window])
    assert finish(handle, env) == {"cancelled": True}
    assert learned == [False]
    assert seen == [("beater", 1, 2, True, "cancelled")]  # heartbeat 2 wrote, read, raised


def test_an_attempt_in_a_helper_thread_learns_the_same_way(env):
    handle = start(env, "threaded", "try_cancel", heartbeat_timeout=30)
    hooks.append(stop(handle, env))
    assert finish(handle, env) == {"cancelled": True}
    assert seen == [("beater", 1, 1, True, "cancelled")]
    assert "ActivityTaskCanceled" in types(handle)


def test_an_async_activity_learns_the_same_way(env):
    handle = start(env, "async", "wait_cancellation_completed", activity="async_beater")
    hooks.append(stop(handle, env))
    assert finish(handle, env) == {"cancelled": True}
    assert seen == [("async_beater", 1, 1, True, "cancelled")]
    assert "ActivityTaskCanceled" in types(handle)


# -- crashes and redelivery --------------------------------------------------------------------
def test_a_crash_between_the_append_and_the_flag_write_is_repaired(moto_env):
    env = moto_env
    def flag_write(call: Call) -> str | None:
        if call.operation == "UpdateItem" and "cancel_requested" in json.dumps(
                call.params, default=str) and not injector.injected:
            return "before"
        return None

    injector = FaultInjector(flag_write)
    handle = start(env, "crash", "try_cancel")
    run_id = handle.current_run_id()
    store = env.runtime.store
    after_crash: list[Any] = []

    def redeliver(ctx: ostinato.ActivityContext) -> None:
        after_crash.append(("ActivityTaskCancelRequested" in types(handle),
                            store.heartbeat_state(run_id, 1)[1], ctx.is_cancelled))
        decide(env, advance=361)  # the workflow queue's visibility timeout, then repair

    hooks.extend([stop(handle, env), redeliver])
    with injector:
        env.drain()
    assert len(injector.injected) == 1 and env.handler_errors  # the decider died
    assert after_crash == [(True, False, False)]  # recorded, but the flag was never written
    assert finish(handle, env) == {"cancelled": True}
    assert seen == [("beater", 1, 2, True, "cancelled")]  # learned once repair re-sent it
    history = handle.history()
    assert_history_sound(history)
    kinds = [e.event_type for e in history]
    assert kinds.count("ActivityTaskCancelRequested") == 1
    assert kinds.count("ActivityTaskCanceled") == 1


def test_a_redelivered_activity_task_after_its_cancellation_runs_nothing(moto_env):
    env = moto_env
    poller = next(p for p in env.pollers
                  if p.mapping.handler.startswith("functions.activity_task"))
    activity_queue = poller.mapping.queue_url

    def keep_the_message(call: Call) -> str | None:  # Lambda's delete after success is lost
        if call.operation == "DeleteMessageBatch" and \
                call.params.get("QueueUrl") == activity_queue and \
                len(injector.injected) < ATTEMPTS:  # every retry the poller makes of it too
            return "before"
        return None

    injector = FaultInjector(keep_the_message, handlers_only=False)
    handle = start(env, "redelivered", "try_cancel")
    hooks.append(stop(handle, env))
    with injector:
        env.drain()
    assert len(injector.injected) == ATTEMPTS
    env.sleep(timedelta(seconds=1801))  # the activity queue's visibility timeout: it is back
    env.sleep(timedelta(seconds=10))  # and the retry that its receive count asked for
    assert finish(handle, env) == {"cancelled": True}
    # attempt 1, its redelivery (a dead worker to the worker: retried as attempt 2), and
    # attempt 2, which found the flag and ran nothing
    assert poller.invocations == 3
    assert seen == [("beater", 1, 1, True, "cancelled")]
    history = handle.history()
    assert_history_sound(history)
    assert [e.event_type for e in history].count("ActivityTaskCanceled") == 1


def test_a_second_cancellation_report_adds_nothing(env):
    handle = start(env, "dup", "wait_cancellation_completed")
    hooks.append(stop(handle, env))
    env.drain()
    run_id = handle.current_run_id()
    report = wire.ActivityOutcome("dup", run_id, f"a:{run_id}:1", seq=1, attempt=1,
                                  cancelled=True)
    env.runtime.transport.send_workflow_task(report.replace(key=f"a:{run_id}:1:again"))
    assert finish(handle, env) == {"cancelled": True}
    assert types(handle).count("ActivityTaskCanceled") == 1


# -- the pure parts ----------------------------------------------------------------------------
def test_the_cancellation_type_is_checked_in_the_workflow(env):
    handle = env.client.start_workflow(awaits_its_activity, "later", id="bad-type")
    with pytest.raises(ostinato.WorkflowFailedError, match="cancellation_type must be one of"):
        handle.result()


def test_cancel_entries_and_reports_round_trip_and_read_as_a_timeline():
    entry = wire.CancelActivity("r", 3)
    assert wire.decode_outbox(json.loads(json.dumps(entry.encode()))) == entry
    report = wire.ActivityOutcome("w", "r", "a:r:3", seq=3, attempt=2, cancelled=True)
    assert wire.decode_message(json.loads(json.dumps(report.encode()))) == report
    assert eventfmt.summarize("ActivityTaskCancelRequested", {"seq": 3}) == "#3"
    assert eventfmt.summarize("ActivityTaskCanceled", {"seq": 3, "attempt": 2}) == \
        "#3 cancelled (attempt 2)"
    assert ostinato.ActivityCancelledError.__module__ == "ostinato._core.errors"
