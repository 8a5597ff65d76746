"""The pure replay core, on its own: no AWS, no clock, no boto3."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import pytest

import ostinato
from ostinato._core import history as h
from ostinato._core.replay import LocalOutcome, Replayer, check_document, info_from_started

EXPECTED_PUBLIC_NAMES = {
    "ActivityContext", "ActivityError", "ActivityInfo", "App", "ApplicationError",
    "CallbackClosedError", "CallbackError", "CallbackNotFoundError", "ChildWorkflowError",
    "DataConversionError",
    "Client", "Event", "EventTrigger", "InvalidScheduleError", "ScheduleAlreadyExistsError",
    "ScheduleNotFoundError", "NonDeterminismError", "OstinatoError",
    "PayloadTooLargeError", "QueryRejectedError", "RetryPolicy", "UnknownTypeError",
    "UpdateRejectedError", "WorkflowAlreadyStartedError", "WorkflowCancelledError",
    "WorkflowClosedError", "WorkflowContext", "WorkflowDescription", "WorkflowFailedError",
    "WorkflowHandle", "WorkflowInfo", "WorkflowNotFoundError", "WorkflowTerminatedError",
    "WorkflowTimedOutError", "activity", "activity_context", "workflow",
}


def test_public_surface_changes_only_on_purpose():
    assert set(ostinato.__all__) == EXPECTED_PUBLIC_NAMES
    for name in ostinato.__all__:
        assert getattr(ostinato, name) is not None


def test_replay_core_imports_without_boto3():
    code = ("import sys; sys.modules['boto3'] = None; sys.modules['botocore'] = None; "
            "sys.modules['pynamodb'] = None; "
            "import ostinato._core.replay, ostinato._core.instance, "
            "ostinato._core.loop, ostinato._core.context")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@ostinato.activity
def act(x):
    return x


@ostinato.workflow
async def two_steps(ctx, n):
    ctx.logger.info("starting with %s", n)
    first = await ctx.execute_activity(act, n)
    await ctx.sleep(10)
    return [first, ctx.random().random(), str(ctx.uuid4())]


STARTED = (h.STARTED, {"workflow_id": "w", "run_id": "r", "workflow_type": "two_steps",
                       "args": [1]})


def no_local(cmd, attempt):  # pragma: no cover - these workflows run no local activity
    raise AssertionError("unexpected local activity")


def record(events_by_task):
    """Build batches by deciding task after task, as the decider would."""
    definition = two_steps.__ostinato_workflow__
    batches, inbound = [], [STARTED]
    for number, (now, new_inbound) in enumerate(events_by_task, start=1):
        replayer = Replayer(definition, info_from_started(STARTED[1], 0.0))
        replayer.replay(batches)
        decision = replayer.decide(inbound + new_inbound, now, no_local)
        first = batches[-1].next_event_id if batches else 1
        batches.append(h.Batch(number, first, now, True, decision.events))
        inbound = []
    return batches, decision


def test_decide_then_replay_gives_the_same_result():
    batches, decision = record([
        (100.0, []),
        (101.0, [(h.ACTIVITY_COMPLETED, {"seq": 1, "result": 1, "attempt": 1})]),
        (111.0, [(h.TIMER_FIRED, {"seq": 2})]),
    ])
    assert decision.status == "COMPLETED"
    replayer = Replayer(two_steps.__ostinato_workflow__, info_from_started(STARTED[1], 0.0))
    replayer.replay(batches)
    assert replayer.instance.closed.result == decision.result  # same random, same uuid


def test_logger_is_silent_during_replay(caplog):
    batches, _ = record([(100.0, [])])
    caplog.set_level(logging.INFO, logger="ostinato.workflow")
    replayer = Replayer(two_steps.__ostinato_workflow__, info_from_started(STARTED[1], 0.0))
    replayer.replay(batches)
    assert "starting with" not in caplog.text
    replayer2 = Replayer(two_steps.__ostinato_workflow__, info_from_started(STARTED[1], 0.0))
    replayer2.decide([STARTED], 100.0, no_local)
    assert "starting with 1" in caplog.text


def test_changed_code_raises_non_determinism_naming_the_event():
    batches, _ = record([(100.0, [])])

    @ostinato.workflow(name="two_steps")
    async def changed(ctx, n):
        await ctx.sleep(5)  # a timer where history has an activity

    replayer = Replayer(changed.__ostinato_workflow__, info_from_started(STARTED[1], 0.0))
    with pytest.raises(ostinato.NonDeterminismError, match=r"ActivityTaskScheduled.*TimerStarted"):
        replayer.replay(batches)


def test_removed_command_is_non_determinism():
    batches, _ = record([(100.0, [])])

    @ostinato.workflow(name="two_steps")
    async def shorter(ctx, n):
        await asyncio.Event().wait()

    replayer = Replayer(shorter.__ostinato_workflow__, info_from_started(STARTED[1], 0.0))
    with pytest.raises(ostinato.NonDeterminismError, match="was not issued"):
        replayer.replay(batches)


def test_history_document_round_trip_replays():
    batches, decision = record([
        (100.0, []),
        (101.0, [(h.ACTIVITY_COMPLETED, {"seq": 1, "result": 1, "attempt": 1})]),
        (111.0, [(h.TIMER_FIRED, {"seq": 2})]),
    ])
    doc = h.to_document("w", "r", batches)
    app = ostinato.App(workflows=[two_steps], activities=[act])
    assert check_document(app, doc).instance.closed.result == decision.result
    with pytest.raises(ValueError, match="not an ostinato history"):
        h.from_document({"events": [{"event_type": "x"}]})


def test_local_activity_outcomes_resolve_in_the_same_task():
    @ostinato.workflow
    async def local_twice(ctx):
        a = await ctx.execute_local_activity(act, "a")
        b = await ctx.execute_local_activity(act, "b")
        return a + b

    ran = []

    def runner(cmd, attempt):
        ran.append(cmd.args[0])
        return LocalOutcome(attempt, result=cmd.args[0].upper())

    started = (h.STARTED, {**STARTED[1], "workflow_type": "local_twice", "args": []})
    replayer = Replayer(local_twice.__ostinato_workflow__, info_from_started(started[1], 0.0))
    decision = replayer.decide([started], 1.0, runner)
    assert decision.status == "COMPLETED" and decision.result == "AB" and ran == ["a", "b"]
    batch = h.Batch(1, 1, 1.0, True, decision.events)
    again = Replayer(local_twice.__ostinato_workflow__, info_from_started(started[1], 0.0))
    again.replay([batch])  # replay does not run them again
    assert ran == ["a", "b"] and again.instance.closed.result == "AB"


def test_workflow_must_be_async():
    with pytest.raises(TypeError, match="async def"):
        ostinato.workflow(lambda ctx: None)
