"""On Lambda the handlers publish CloudWatch metrics as EMF lines on stdout, per invocation."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import ostinato
from ostinato import RetryPolicy, activity, workflow
from ostinato._aws.observer import LambdaObserver, tracer_if_enabled, tracing_wanted
from ostinato._core import keys, wire
from ostinato._engine.ports import NO_OBSERVER

ROOT = Path(__file__).resolve().parents[1]


@activity
def hop(x: int) -> int:
    return x


@activity(retry=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=1)))
def broken() -> None:
    raise RuntimeError("always")


@workflow
async def hops(ctx: ostinato.WorkflowContext, n: int) -> list[int]:
    return [await ctx.execute_activity(hop, i) for i in range(n)]


@workflow
async def fails(ctx: ostinato.WorkflowContext) -> None:
    await ctx.execute_activity(broken)


@workflow(execution_timeout=timedelta(minutes=1))
async def stalls(ctx: ostinato.WorkflowContext) -> None:
    await ctx.sleep(timedelta(hours=1))


@workflow
async def shaped(ctx: ostinato.WorkflowContext) -> str:
    await ctx.execute_activity(hop, 1)
    await ctx.wait_for_signal("next")
    return "v1"


app = ostinato.App(workflows=[hops, fails, stalls, shaped], activities=[hop, broken])

Key = tuple[str, tuple[tuple[str, str], ...]]


def emf_points(out: str) -> tuple[dict[Key, list[float]], dict[str, str], set[str]]:
    """(metric name, dimensions) -> values; metric name -> unit; namespaces, from EMF lines."""
    values: dict[Key, list[float]] = defaultdict(list)
    units: dict[str, str] = {}
    namespaces: set[str] = set()
    for line in out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        blob = json.loads(line)
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        namespaces.add(directive["Namespace"])
        (dimension_names,) = directive["Dimensions"]
        dims = tuple(sorted((d, blob[d]) for d in dimension_names))
        for metric in directive["Metrics"]:
            units[metric["Name"]] = metric["Unit"]
            found = blob[metric["Name"]]
            values[metric["Name"], dims] += found if isinstance(found, list) else [found]
    return values, units, namespaces


def of(kind: str, name: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"service": "ostinato", kind: name}.items()))


SERVICE = (("service", "ostinato"),)


@pytest.fixture
def lambda_env(make_env, monkeypatch):
    """The environment with the runtime built as on Lambda (the function's name is set)."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ostinato-test")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    return make_env(app)


def test_handlers_publish_workflow_and_activity_metrics_by_type(lambda_env, capsys,
                                                                 monkeypatch):
    env = lambda_env
    assert isinstance(env.runtime.engine.observer, LambdaObserver)  # wired by _runtime.build
    capsys.readouterr()

    assert env.client.start_workflow(hops, 3, id="h").result() == [0, 1, 2]
    with pytest.raises(ostinato.WorkflowFailedError):
        env.client.start_workflow(fails, id="f").result()
    with pytest.raises(TimeoutError):  # WorkflowTimedOutError is a TimeoutError
        env.client.start_workflow(stalls, id="s").result()
    # a non-determinism error: the code changes under a running history
    shaped_handle = env.client.start_workflow(shaped, id="nd")
    env.drain()

    async def changed(ctx: ostinato.WorkflowContext) -> str:
        await ctx.execute_activity(broken)  # a different first activity
        return "v2"

    monkeypatch.setitem(app.workflows, "shaped", type(app.workflows["shaped"])("shaped", changed))
    shaped_handle.signal("next")
    env.sleep(30)
    # a deferral: a wake-up for a run that was never written
    env.runtime.transport.send_workflow_task(wire.Start("ghost", "r0", keys.start("r0")))
    env.sleep(5)

    values, units, namespaces = emf_points(capsys.readouterr().out)

    assert namespaces == {"ostinato"}
    assert sum(values["WorkflowsStarted", of("workflow_type", "hops")]) == 1
    assert sum(values["WorkflowsCompleted", of("workflow_type", "hops")]) == 1
    assert sum(values["WorkflowsFailed", of("workflow_type", "fails")]) == 1
    assert sum(values["WorkflowsTimedOut", of("workflow_type", "stalls")]) == 1
    assert sum(values["ActivityAttempts", of("activity_type", "hop")]) == 4  # 3 + shaped's
    assert sum(values["ActivityAttempts", of("activity_type", "broken")]) == 2
    assert sum(values["ActivityFailures", of("activity_type", "broken")]) == 2
    assert len(values["ActivityLatency", of("activity_type", "hop")]) == 4
    decide = values["WorkflowTaskDecideTime", of("workflow_type", "hops")]
    waited = values["WorkflowTaskScheduleToStart", of("workflow_type", "hops")]
    assert len(decide) == 4 and len(waited) == 4 and min(decide + waited) >= 0
    assert sum(values["NonDeterminismErrors", of("workflow_type", "shaped")]) >= 1
    assert sum(values["WorkflowTaskFailures", of("workflow_type", "shaped")]) >= 1
    assert sum(values["WorkflowTaskDeferrals", SERVICE]) >= 1
    assert {units[n] for n in ("WorkflowTaskDecideTime", "WorkflowTaskScheduleToStart",
                               "ActivityLatency")} == {"Milliseconds"}
    assert units["WorkflowsStarted"] == units["ActivityAttempts"] == "Count"


def test_every_invocation_flushes_its_own_points(lambda_env, capsys):
    env = lambda_env
    env.client.start_workflow(hops, 1, id="one")
    capsys.readouterr()
    env.pollers[0].poll()  # one decider invocation: the start

    values, _, _ = emf_points(capsys.readouterr().out)

    assert sum(values["WorkflowsStarted", of("workflow_type", "hops")]) == 1
    assert env.runtime.engine.observer._points == {}  # nothing left for the next invocation


def test_off_lambda_nothing_is_recorded(make_env, capsys):
    env = make_env(app)
    assert env.runtime.engine.observer is NO_OBSERVER
    env.client.start_workflow(hops, 1, id="quiet").result()
    assert '{"_aws"' not in capsys.readouterr().out


def test_trace_subsegments_only_when_asked_for_on_lambda():
    on = {"AWS_LAMBDA_FUNCTION_NAME": "f", "OSTINATO_TRACE_SUBSEGMENTS": "true"}
    assert tracing_wanted(on)
    assert not tracing_wanted({**on, "POWERTOOLS_TRACE_DISABLED": "1"})
    assert not tracing_wanted({**on, "AWS_LAMBDA_FUNCTION_NAME": ""})
    assert not tracing_wanted({"AWS_LAMBDA_FUNCTION_NAME": "f"})
    assert tracer_if_enabled({}) is None


def test_handler_imports_leave_the_xray_sdk_unloaded():
    """The X-Ray SDK costs ~250 ms of cold start: the SQS handlers must not import it."""
    code = ("import sys; import functions.workflow_task.app, functions.activity_task.app; "
            "print(sorted(m for m in sys.modules if m.startswith('aws_xray_sdk')))")
    path = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    env = {**os.environ, "PYTHONPATH": path, "AWS_LAMBDA_FUNCTION_NAME": "f"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_spans_wrap_replays_and_activities_when_a_tracer_is_on(lambda_env):
    env = lambda_env
    opened: list[str] = []

    class Provider:
        @contextlib.contextmanager
        def in_subsegment(self, name: str) -> Iterator[None]:
            opened.append(name)
            yield

    class FakeTracer:
        provider = Provider()

    env.runtime.engine.observer = LambdaObserver(tracer=FakeTracer())
    env.client.start_workflow(hops, 2, id="traced").result()
    assert opened.count("## replay") == 3  # start, then one decision per activity result
    assert opened.count("## activity hop") == 2
