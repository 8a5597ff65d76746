"""Latent bugs a review found, each pinned by a test that failed before its fix."""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.client import BaseClient

import ostinato
from ostinato import _runtime, lambda_handlers
from ostinato._core import history as h
from ostinato._core.activity import call_activity
from ostinato._core.replay import Replayer, info_from_started
from ostinato._local.emulator import LambdaContext, sqs_record
from ostinato._local.faults import FaultInjector
from ostinato.testing import EnvironmentConflictError, WorkflowEnvironment


# -- 1. one batch processor per invocation ------------------------------------------------------
def _sqs_event(batch: str, steps: list[str]) -> dict[str, Any]:
    messages = [{"MessageId": f"{batch}{n}", "ReceiptHandle": f"rh-{batch}{n}",
                 "Body": json.dumps({"step": step}), "Attributes": {}}
                for n, step in enumerate(steps)]
    return {"Records": [sqs_record(m, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
                        for m in messages]}


@pytest.mark.parametrize(("handler", "record_handler"), [
    ("activity_task", "_activity_record"), ("timer", "_timer_record"),
    ("events", "_trigger_record")])
def test_concurrent_invocations_each_report_only_their_own_batch_failures(
        monkeypatch, handler, record_handler):
    """`ostinato dev` runs one poller thread per queue: two batches in flight at once."""
    # given: record handlers that hold both invocations inside processing together
    inside = threading.Barrier(2, timeout=10)    # both batches have started
    processed = threading.Barrier(2, timeout=10)  # both batches ran every record

    def handle(record: Any, budget: Any = None) -> None:  # as the handlers call it
        step = json.loads(record.body)["step"]
        if step == "first":
            inside.wait()
        elif step == "fail":
            raise RuntimeError("poison message")
        elif step == "last":
            processed.wait()

    monkeypatch.setattr(lambda_handlers, record_handler, handle)
    from ostinato._engine.ports import NullObserver  # no stack: the handlers' metrics go nowhere

    runtime = SimpleNamespace(engine=SimpleNamespace(observer=NullObserver(), clock=time.time))
    monkeypatch.setattr(lambda_handlers._runtime, "get", lambda: runtime)
    function = getattr(lambda_handlers, handler)
    events = {"a": _sqs_event("a", ["first", "fail", "last"]),
              "b": _sqs_event("b", ["first", "last"])}
    answers: dict[str, Any] = {}

    def invoke(batch: str) -> None:
        answers[batch] = function(events[batch], LambdaContext(handler, aws_request_id=batch))

    # when: both invocations run at the same time
    threads = [threading.Thread(target=invoke, args=(batch,)) for batch in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)

    # then: each answer names exactly its own failed records
    assert answers["a"] == {"batchItemFailures": [{"itemIdentifier": "a1"}]}
    assert answers["b"] == {"batchItemFailures": []}


# -- 2. a workflow's tasks are strongly referenced; unobserved failures fail the run -------------
async def _boom() -> None:
    raise ValueError("lost in a background task")


class _Holder:
    """Keeps a task in a reference cycle: only the garbage collector could free it."""

    task: asyncio.Task[None]


@ostinato.workflow
async def fire_and_forget(ctx: ostinato.WorkflowContext) -> str:
    asyncio.create_task(_boom())  # noqa: RUF006 - the point of the test
    await ctx.sleep(10)
    return "done"


@ostinato.workflow
async def forgotten_in_a_cycle(ctx: ostinato.WorkflowContext) -> str:
    holder = _Holder()
    holder.self = holder  # type: ignore[attr-defined]
    holder.task = asyncio.create_task(_boom())
    del holder
    await ctx.sleep(10)
    return "done"


@ostinato.workflow
async def awaits_its_failed_task_later(ctx: ostinato.WorkflowContext) -> str:
    task = asyncio.create_task(_boom())
    await ctx.sleep(10)  # the task failed meanwhile; nobody looked yet
    try:
        await task
    except ValueError as exc:
        return f"caught: {exc}"
    return "not raised"


def _decide_twice(workflow: Any, collect: bool) -> list[tuple[str, Any]]:
    """Start `workflow`, then fire its timer (seq 1): two workflow tasks, as the decider runs
    them (a fresh replay of the history so far each time). `collect`: a full garbage
    collection before and after each task."""
    definition = workflow.__ostinato_workflow__
    started = (h.STARTED, {"workflow_id": "w", "run_id": "r", "workflow_type": definition.name,
                           "args": []})
    batches: list[h.Batch] = []
    outcomes = []
    for number, (now, inbound) in enumerate([(100.0, [started]),
                                             (111.0, [(h.TIMER_FIRED, {"seq": 1})])], start=1):
        if collect:
            gc.collect()
        replayer = Replayer(definition, info_from_started(started[1], 0.0))
        replayer.replay(batches)
        decision = replayer.decide(inbound, now, lambda cmd, attempt: None)  # type: ignore[arg-type,return-value]
        first = batches[-1].next_event_id if batches else 1
        batches.append(h.Batch(number, first, now, True, decision.events))
        outcomes.append((decision.status, (decision.failure or {}).get("message")
                         if decision.failure else decision.result))
        del replayer
        if collect:
            gc.collect()
    return outcomes


@pytest.fixture
def no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@pytest.mark.parametrize("workflow", [fire_and_forget, forgotten_in_a_cycle])
@pytest.mark.parametrize("collect", [False, True], ids=["no-gc", "gc-collect"])
def test_an_unobserved_task_failure_fails_the_workflow_whatever_the_gc_does(
        no_gc, workflow, collect):
    # when: the workflow function returns while a task it started failed unobserved
    outcomes = _decide_twice(workflow, collect)
    # then: the run fails with that error, at the same task, with or without a collection
    assert outcomes == [("RUNNING", None), ("FAILED", "lost in a background task")]


@pytest.mark.parametrize("collect", [False, True], ids=["no-gc", "gc-collect"])
def test_a_failed_task_awaited_later_does_not_fail_the_workflow(no_gc, collect):
    assert _decide_twice(awaits_its_failed_task_later, collect) == [
        ("RUNNING", None), ("COMPLETED", "caught: lost in a background task")]


@ostinato.workflow
async def bad_signal_handler(ctx: ostinato.WorkflowContext) -> None:
    async def handler() -> None:
        raise ValueError("handler broke")

    ctx.on_signal("poke", handler)
    await ctx.wait_condition(lambda: False)


def test_an_async_signal_handler_that_raises_fails_the_workflow_at_once(no_gc):
    """Nothing can await a handler's task: its error counts in the task it happened in."""
    definition = bad_signal_handler.__ostinato_workflow__
    started = {"workflow_id": "w", "run_id": "r", "workflow_type": definition.name, "args": []}
    replayer = Replayer(definition, info_from_started(started, 0.0))
    decision = replayer.decide([(h.STARTED, started), (h.SIGNALED, {"name": "poke", "args": []})],
                               100.0, lambda cmd, attempt: None)  # type: ignore[arg-type,return-value]
    assert (decision.status, decision.failure["message"]) == ("FAILED", "handler broke")


# -- 3. an abandoned activity attempt stops heartbeating -----------------------------------------
def test_an_attempt_abandoned_at_its_timeout_saves_no_more_heartbeats():
    # given: an activity that heartbeats (every beat saved at once) far past its timeout
    saved: list[Any] = []
    info = ostinato.ActivityInfo("w", "r", 1, "stubborn", 1, "default", 0.0, None)
    ctx = ostinato.ActivityContext(info, None, save=saved.append, throttle=0)
    abandoned, finished = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def stubborn() -> None:
        beats_after = 0
        try:
            for i in range(10_000):
                ostinato.activity_context().heartbeat(i)
                seen["last"] = i
                beats_after += abandoned.is_set()
                if beats_after >= 10:
                    return
                time.sleep(0.005)
        except TimeoutError as exc:
            seen["stopped_by"] = exc
        finally:
            finished.set()

    # when: the worker abandons it after 0.1 s, and its thread goes on
    with pytest.raises(TimeoutError, match="start_to_close_timeout"):
        call_activity(stubborn, [], ctx, timeout=0.1, heartbeat_timeout=None)
    at_abandonment = list(saved)
    abandoned.set()
    assert finished.wait(10)

    # then: its later heartbeats saved nothing, and the first of them told it to stop
    assert saved == at_abandonment
    assert saved[-1] == seen["last"]  # what it last reported is what the next attempt gets
    assert isinstance(seen.get("stopped_by"), TimeoutError)


def test_abandoning_an_attempt_saves_the_details_it_last_reported():
    saved: list[Any] = []
    info = ostinato.ActivityInfo("w", "r", 1, "slow", 1, "default", 0.0, None)
    ctx = ostinato.ActivityContext(info, None, save=saved.append, throttle=3600)
    reported = threading.Event()

    def slow() -> None:
        ctx.heartbeat("first")  # saved at once
        ctx.heartbeat("latest")  # throttled: not saved yet
        reported.set()
        time.sleep(1)

    with pytest.raises(TimeoutError):
        call_activity(slow, [], ctx, timeout=0.2, heartbeat_timeout=None)
    assert reported.is_set()
    assert saved == ["first", "latest"]


_zombie: dict[str, Any] = {}
_zombie_done = threading.Event()


@ostinato.activity(start_to_close_timeout=timedelta(seconds=0.3),
                   retry=ostinato.RetryPolicy(maximum_attempts=2))
def stubborn() -> Any:
    ctx = ostinato.activity_context()
    if ctx.info.attempt > 1:
        details = ctx.heartbeat_details
        ctx.heartbeat("second attempt")
        ctx.flush()
        return details
    started = time.monotonic()
    try:
        for i in range(10_000):
            if time.monotonic() - started > 3:
                return None
            ctx.heartbeat(i)
            ctx.flush()
            _zombie["last_reported"] = i
            time.sleep(0.02)
    except TimeoutError as exc:
        _zombie["stopped_by"] = exc
    finally:
        _zombie_done.set()
    return None


@ostinato.workflow
async def runs_stubborn(ctx: ostinato.WorkflowContext) -> Any:
    return await ctx.execute_activity(stubborn)


def test_the_next_attempt_gets_the_details_of_the_abandoned_one_and_keeps_its_own(
        make_env, monkeypatch):
    _zombie.clear()
    _zombie_done.clear()
    env = make_env(ostinato.App(workflows=[runs_stubborn], activities=[stubborn]))
    store = env.runtime.store
    load = store.load_heartbeat
    state = store.heartbeat_state

    def load_once_the_first_attempt_is_done(run_id: str, seq: int) -> Any:
        assert _zombie_done.wait(10), "the first attempt never ended"
        return state(run_id, seq)

    monkeypatch.setattr(store, "heartbeat_state", load_once_the_first_attempt_is_done)
    handle = env.client.start_workflow(runs_stubborn, id="stubborn")
    # the second attempt started from what the first had reported when it was abandoned...
    assert handle.result() == _zombie["last_reported"]
    assert isinstance(_zombie.get("stopped_by"), TimeoutError)
    run_id = handle.current_run_id()
    assert load(run_id, 1) == "second attempt"
    # ...and a stale attempt's heartbeat can never replace the later attempt's details
    store.save_heartbeat(run_id, 1, 1, "stale")
    assert load(run_id, 1) == "second attempt"


# -- 4. test environments: nested ones restore the outer one, concurrent ones are refused --------
@ostinato.workflow
async def naps(ctx: ostinato.WorkflowContext, seconds: int) -> str:
    await ctx.sleep(seconds)
    return f"slept {seconds}s by {ctx.now().isoformat()}"


NAPS = ostinato.App(workflows=[naps])
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_a_nested_environment_restores_the_outer_one_on_exit():
    before = _runtime._current
    with WorkflowEnvironment(NAPS, start_time=T0) as outer:
        waiting = outer.client.start_workflow(naps, 600, id="outer-nap")
        outer.drain()  # its timer is now a delayed message in the outer stack's queue
        with WorkflowEnvironment(NAPS, start_time=T0 - timedelta(days=1)) as inner:
            assert _runtime.get() is inner.runtime
            assert inner.client.start_workflow(naps, 5, id="inner-nap").result().startswith(
                "slept 5s by 2029-12-31T00:00:05")
            # nothing of its own is due: the outer stack's timer must not move its clock
            inner_now = inner.now()
            with pytest.raises(TimeoutError, match="blocked"):
                inner.run_until(lambda: False)
            assert inner.now() == inner_now
        assert _runtime.get() is outer.runtime
        assert waiting.result().startswith("slept 600s by 2030-01-01T00:10:00")
    assert _runtime._current is before


def test_environments_used_at_the_same_time_are_refused_with_a_clear_error():
    with WorkflowEnvironment(NAPS) as outer:
        # another thread cannot enter one while this one is active
        refused: list[BaseException] = []

        def enter_another() -> None:
            try:
                with WorkflowEnvironment(NAPS):
                    pass
            except BaseException as exc:
                refused.append(exc)

        thread = threading.Thread(target=enter_another)
        thread.start()
        thread.join(60)
        assert len(refused) == 1 and isinstance(refused[0], EnvironmentConflictError)
        assert "process-wide" in str(refused[0])
        # and an outer environment is suspended while a nested one is active
        with WorkflowEnvironment(NAPS):
            with pytest.raises(EnvironmentConflictError, match="suspended"):
                outer.drain()
            with pytest.raises(EnvironmentConflictError, match="suspended"):
                outer.client.start_workflow(naps, 1, id="too-early").result()
        assert outer.client.start_workflow(naps, 1, id="later").result().startswith("slept")


def test_a_second_fault_injector_at_once_is_refused():
    original = BaseClient._make_api_call
    with FaultInjector(lambda call: None), pytest.raises(EnvironmentConflictError,
                                                         match="FaultInjector"):
        FaultInjector(lambda call: None).__enter__()
    assert BaseClient._make_api_call is original


# -- 5. a 500 says nothing internal; the log says it all -----------------------------------------
SECRET = "arn:aws:dynamodb:us-east-1:123456789012:table/secret-table"
API_SAMPLE = json.loads((Path(__file__).resolve().parents[1] / "events" /
                         "api_start_workflow.json").read_text())


class _BrokenClient:
    """Every call fails the way an unexpected AWS error would, naming a private resource."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"ResourceNotFoundException on {SECRET}")
        return fail


@pytest.fixture
def api_log(monkeypatch) -> Iterator[list[logging.LogRecord]]:
    """The API's log records at ERROR and above (the test run silences Powertools)."""
    from ostinato._api import routes

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep, level = Keep(), routes.logger.log_level
    routes.logger.addHandler(keep)
    routes.logger.setLevel(logging.ERROR)
    try:
        yield records
    finally:
        routes.logger.removeHandler(keep)
        routes.logger.setLevel(level)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/workflows/order-1", None),
    ("POST", "/workflows", {"workflow_type": "order", "args": [], "id": "order-1"}),
])
def test_an_internal_error_answers_500_without_internals_and_logs_them(
        monkeypatch, api_log, method, path, body):
    from ostinato._api import routes

    # given: a client whose every call fails with an error naming a private ARN
    event = copy.deepcopy(API_SAMPLE)
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["body"] = None if body is None else json.dumps(body)

    # when
    answer = routes.handle(event, LambdaContext("ApiFunction", aws_request_id="req-1234"),
                           _BrokenClient())  # type: ignore[arg-type]

    # then: the caller learns only that it failed, and which request to look up
    assert answer["statusCode"] == 500
    assert json.loads(answer["body"]) == {"error": {
        "code": "internal_error", "message": "internal error; see the logs (request id req-1234)"}}
    assert "secret-table" not in answer["body"] and "RuntimeError" not in answer["body"]
    # and the log has the error with its traceback
    (record,) = [r for r in api_log if r.exc_info]
    logged = logging.Formatter().format(record)
    assert SECRET in logged and "Traceback" in logged and "_BrokenClient" not in answer["body"]


def test_a_crashed_api_function_in_ostinato_dev_answers_500_without_internals(caplog):
    from ostinato._local.http_api import LocalHttpApi

    def crashes(event: Any, context: Any) -> Any:
        raise RuntimeError(f"cannot reach {SECRET}")

    api = LocalHttpApi(crashes, port=0)
    try:
        with caplog.at_level(logging.ERROR, logger="ostinato.dev"):
            status, _headers, body = api.invoke("GET", "/workflows", {}, b"", "127.0.0.1")
    finally:
        api.stop()
    assert status == 500
    error = json.loads(body)["error"]
    assert error["code"] == "internal_error" and SECRET not in body.decode()
    assert error["message"].startswith("internal error; see the logs (request id ")
    assert SECRET in caplog.text and "Traceback" in caplog.text
