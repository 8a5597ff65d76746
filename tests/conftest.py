"""Shared fixtures: a WorkflowEnvironment per test, and history invariants."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")  # handlers log JSON to stdout

from ostinato import App
from ostinato._local.sim.invariants import history_problems
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
    """The invariants every history keeps, whatever failed on the way (the simulation's
    history check: contiguous ids, start first, nothing recorded twice, one close, last)."""
    problems = history_problems(events)
    assert not problems, problems
