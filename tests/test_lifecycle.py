"""Versioning with patched(), continue-as-new, execution timeouts, terminate_existing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ostinato
from ostinato._core import history as h
from ostinato._core import wire
from ostinato._core.replay import check_document
from tests.apps import versions
from tests.conftest import assert_history_sound

HISTORIES = Path(__file__).parent / "histories"


def record_v1_history(make_env) -> dict:
    """How tests/histories/fulfil_v1.json was made: a finished run under v1's code."""
    env = make_env(versions.app_with(versions.fulfil_v1))
    handle = env.client.start_workflow("fulfil", "A-1", id="v1")
    handle.signal("go")
    handle.signal("finish")
    assert handle.result() == ["pack A-1", "ship A-1"]
    rid = handle.current_run_id()
    return h.to_document("v1", rid, env.runtime.store.load_batches(rid))


def test_recorded_v1_history_is_current(make_env):
    """The stored history is what v1 produces (so the replay tests below test real data)."""
    fresh = record_v1_history(make_env)
    stored = json.loads((HISTORIES / "fulfil_v1.json").read_text())
    shape = lambda doc: [(e["event_type"], e.get("seq"), e.get("activity_type"))  # noqa: E731
                         for e in doc["events"]]
    assert shape(fresh) == shape(stored)


def test_patched_code_replays_old_history_and_unpatched_change_does_not():
    doc = json.loads((HISTORIES / "fulfil_v1.json").read_text())
    replayer = check_document(versions.app_with(versions.fulfil_v2), doc)
    assert replayer.instance.closed.result == ["pack A-1", "ship A-1"]
    assert replayer.instance.patches == {"insure-before-ship": False}
    with pytest.raises(ostinato.NonDeterminismError, match="seq="):
        check_document(versions.app_with(versions.fulfil_unpatched_change), doc)


def test_running_old_workflow_keeps_old_path_new_one_takes_patch(make_env, monkeypatch):
    app = versions.app_with(versions.fulfil_v1)
    env = make_env(app)
    old = env.client.start_workflow("fulfil", "B-1", id="old")
    old.signal("go")
    env.drain()  # v1 went past the patch point: it shipped and waits for "finish"
    monkeypatch.setitem(app.workflows, "fulfil", versions.fulfil_v2.__ostinato_workflow__)
    old.signal("finish")
    assert old.result() == ["pack B-1", "ship B-1"]  # patched() is False on its replay
    new = env.client.start_workflow("fulfil", "B-2", id="new")
    new.signal("go")
    new.signal("finish")
    assert new.result() == ["pack B-2", "insure B-2", "ship B-2"]
    markers = [e for e in new.history() if e.event_type == "MarkerRecorded"]
    assert [m.attributes["patch_id"] for m in markers] == ["insure-before-ship"]
    # v3 retires the patch: v2 histories (with the marker) still replay
    rid = new.current_run_id()
    v2_doc = h.to_document("new", rid, env.runtime.store.load_batches(rid))
    replayer = check_document(versions.app_with(versions.fulfil_v3), v2_doc)
    assert replayer.instance.closed.result == ["pack B-2", "insure B-2", "ship B-2"]


def test_replay_cli_checks_a_recorded_history(tmp_path):
    from click.testing import CliRunner

    from ostinato._cli.main import cli

    doc = tmp_path / "h.json"
    doc.write_text((HISTORIES / "fulfil_v1.json").read_text())
    runner = CliRunner()
    import sys
    import types

    module = types.ModuleType("lifecycle_apps")
    module.v2 = versions.app_with(versions.fulfil_v2)  # type: ignore[attr-defined]
    module.broken = versions.app_with(versions.fulfil_unpatched_change)  # type: ignore[attr-defined]
    sys.modules["lifecycle_apps"] = module
    ok = runner.invoke(cli, ["replay", "lifecycle_apps:v2", str(doc)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(cli, ["replay", "lifecycle_apps:broken", str(doc)])
    assert bad.exit_code == 1 and "ActivityTaskScheduled" in bad.output


def test_continue_as_new_over_a_hundred_runs(make_env):
    env = make_env(versions.app_with(versions.fulfil_v1))
    versions.ran.clear()
    handle = env.client.start_workflow("countdown", 120, id="chain")
    first_run = handle.run_id
    assert handle.result(timeout=120) == {"total": sum(range(1, 121)), "continued_from": True}
    assert sum(versions.ran.values()) == 120 and max(versions.ran.values()) == 1
    desc = env.client.get_workflow_handle("chain").describe()
    assert desc.status == "COMPLETED" and desc.run_id != first_run
    first = env.client.get_workflow_handle("chain", first_run).history()
    assert first[-1].event_type == "WorkflowExecutionContinuedAsNew"
    assert len(first) == 4  # started, scheduled, completed, continued: history stays small
    assert_history_sound(first)
    last = env.client.get_workflow_handle("chain").history()
    assert last[0].attributes["continued_from"] and last[-1].event_type.endswith("Completed")


def test_execution_timeout_spans_continue_as_new(make_env):
    env = make_env(versions.app_with(versions.fulfil_v1))
    handle = env.client.start_workflow("slow_chain", 5, id="slow")
    with pytest.raises(ostinato.WorkflowTimedOutError):
        handle.result()
    desc = handle.describe()
    assert desc.status == "TIMED_OUT"
    # 25-minute rounds: the third run is cut off at the one-hour mark of the first
    assert (desc.close_time - env.client.get_workflow_handle(
        "slow", handle.run_id).history()[0].timestamp).total_seconds() == pytest.approx(
            3600, abs=2)
    latest = env.client.get_workflow_handle("slow").history()
    assert latest[-1].event_type == "WorkflowExecutionTimedOut"


def test_terminate_existing_replaces_the_running_workflow(make_env):
    env = make_env(versions.app_with(versions.fulfil_v1))
    first = env.client.start_workflow("fulfil", "C-1", id="dup")
    env.drain()
    second = env.client.start_workflow("fulfil", "C-2", id="dup",
                                       id_conflict_policy="terminate_existing")
    assert second.run_id != first.run_id
    second.signal("go")
    second.signal("finish")
    assert second.result() == ["pack C-2", "ship C-2"]
    with pytest.raises(ostinato.WorkflowTerminatedError, match="terminated"):
        first.result()


@ostinato.workflow
async def entity(ctx, total: int) -> int:
    got: list[int] = []
    ctx.on_signal("add", got.append)
    await ctx.wait_condition(lambda: got)
    if total + sum(got) < 10:
        ctx.continue_as_new(total + sum(got))
    return total + sum(got)


def test_signal_addressed_to_a_run_that_just_continued_reaches_the_next_run(make_env):
    """Review finding: a signal sent to run 1 while run 1 continues as new was dropped."""
    env = make_env(ostinato.App(workflows=[entity]))
    handle = env.client.start_workflow("entity", 0, id="ent")
    env.drain()
    first = handle.current_run_id()
    for n, key in ((4, "x1"), (3, "x2")):  # both addressed to run 1, decided separately
        env.client.transport.send_workflow_task(wire.Signal("ent", first, key, name="add",
                                                            args=[n]))
        env.drain()
    latest = env.client.get_workflow_handle("ent")
    assert latest.run_id is None and latest.describe().run_id != first
    latest.signal("add", 3)  # 4 + 3 + 3 reaches 10
    assert latest.result() == 10


def test_terminate_existing_wakes_the_new_run_even_if_its_first_wakeup_was_dropped(make_env):
    """Review finding: the decider saw the old run RUNNING, dropped the new run's wake-up as
    an orphan, and the take-over write then left the new run with nothing on its way."""
    env = make_env(versions.app_with(versions.fulfil_v1))
    env.client.start_workflow("fulfil", "D-1", id="tx")
    env.drain()
    store = env.runtime.store
    original = store.create_head

    def decider_runs_in_between(head, replacing=None, only_new=False):
        if replacing is not None:
            env.drain()  # the new run's wake-up is processed (and dropped) right here
        return original(head, replacing=replacing, only_new=only_new)

    store.create_head = decider_runs_in_between
    second = env.client.start_workflow("fulfil", "D-2", id="tx",
                                       id_conflict_policy="terminate_existing")
    store.create_head = original
    env.drain()
    assert env.runtime.store.load_batches(second.run_id), "the new run was never woken"
    second.signal("go")
    second.signal("finish")
    assert second.result() == ["pack D-2", "ship D-2"]
