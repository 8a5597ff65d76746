"""Shared fixtures: a WorkflowEnvironment per test, and history invariants."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import pytest

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")  # handlers log JSON to stdout

from ostinato import App
from ostinato.testing import WorkflowEnvironment


@pytest.fixture
def make_env() -> Iterator[object]:
    envs: list[WorkflowEnvironment] = []

    def factory(app: App, **kwargs: object) -> WorkflowEnvironment:
        env = WorkflowEnvironment(app, **kwargs).__enter__()  # type: ignore[arg-type]
        envs.append(env)
        return env

    yield factory
    for env in reversed(envs):
        env.__exit__(None, None, None)


def assert_history_sound(events: list) -> None:
    """The invariants every history keeps, whatever failed on the way."""
    ids = [e.event_id for e in events]
    assert ids == list(range(1, len(ids) + 1)), f"event ids not contiguous: {ids}"
    assert events[0].event_type == "WorkflowExecutionStarted"
    kinds = Counter()
    for e in events:
        seq = e.attributes.get("seq")
        if e.event_type == "ActivityTaskScheduled":
            kinds["sched", seq] += 1
        elif e.event_type in ("ActivityTaskCompleted", "ActivityTaskFailed",
                              "ActivityTaskTimedOut", "ActivityTaskCanceled"):
            kinds["done", seq] += 1
        elif e.event_type == "TimerStarted":
            kinds["timer", seq] += 1
        elif e.event_type in ("TimerFired", "TimerCanceled"):
            kinds["timer_end", seq] += 1
    duplicated = {k: n for k, n in kinds.items() if n > 1}
    assert not duplicated, f"duplicated history events: {duplicated}"
    closing = [e for e in events if e.event_type in (
        "WorkflowExecutionCompleted", "WorkflowExecutionFailed", "WorkflowExecutionCancelled",
        "WorkflowExecutionTerminated", "WorkflowExecutionTimedOut")]
    assert len(closing) <= 1, f"closed more than once: {closing}"
    if closing:
        assert closing[0] is events[-1], "events after the closing event"
