"""The simulation (DESIGN §5): seeded random workloads under faults, invariants after each."""

from __future__ import annotations

import bisect
import re
from datetime import UTC, datetime

import pytest

from ostinato._core import history as h
from ostinato._local.memory import store as store_module
from ostinato._local.sim import __main__ as simulate
from ostinato._local.sim.invariants import check_plan, history_problems
from ostinato._local.sim.workload import Plan, draw, expected


def violations_of(lines: list[str], seed: int) -> list[str]:
    """The violations the summary lists under `seed`, run ids masked."""
    start = lines.index(next(line for line in lines if line.startswith(f"seed {seed}: ")))
    found = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        found.append(re.sub(r"\b[0-9a-f]{32}\b", "<run>", line))
    return found


def simulate_lines(capsys, *argv: str) -> tuple[int, list[str]]:
    status = simulate.main(list(argv))
    return status, capsys.readouterr().out.splitlines()


@pytest.mark.slow
def test_two_thousand_schedules_under_faults_keep_every_invariant(capsys):
    """CI's share of the simulation: 2,000 seeded schedules on the memory backend."""
    status, out = simulate_lines(capsys, "--schedules", "2000", "--seed", "0")
    assert out[-1] == "simulation: 2000 schedules, 0 violations", out[-12:]
    assert status == 0
    faults = next(line for line in out if line.startswith("faults injected: "))
    injected = int(faults.split()[2])
    assert injected > 2000  # faults before and after every kind of call, not a quiet run


def test_the_moto_backend_runs_the_same_simulation(capsys):
    status, out = simulate_lines(capsys, "--schedules", "2", "--seed", "100", "--workflows",
                                 "3", "--backend", "moto")
    assert out[-1] == "simulation: 2 schedules, 0 violations" and status == 0
    assert not out[0].startswith("faults injected: 0")


def test_the_simulation_finds_a_store_that_lets_a_conditional_put_through(capsys,
                                                                          monkeypatch):
    """The mutation check: the memory table's append loses its condition (a second put of a
    batch number overwrites the first), and the simulation must notice."""
    def unconditional_append(self, run_id, batch):
        item = store_module.BatchItem(batch.number, batch.first_event_id, float(batch.time),
                                      bool(batch.decided), tuple(batch.consumed),
                                      h.encode_body(batch))
        with self._lock:
            run = self._run(run_id)
            if batch.number not in run.batches:
                bisect.insort(run.numbers, batch.number)
            run.batches[batch.number] = item

    monkeypatch.setattr(store_module.MemoryStore, "append", unconditional_append)
    status, out = simulate_lines(capsys, "--schedules", "30", "--seed", "0")
    assert status == 1
    assert out[-1].startswith("simulation: 30 schedules, ")
    assert not out[-1].endswith(" 0 violations")
    replay = next(line for line in out if line.startswith("replay the first failing seed: "))
    seed = int(replay.split("--seed ", 1)[1].split()[0])
    assert replay.endswith(f"scripts/simulate.sh --seed {seed} --schedules 1 --workflows 4")
    # the printed command replays it: the same seed breaks the same invariants, alone (run
    # ids are uuid4s, the one thing a seed does not draw)
    status, again = simulate_lines(capsys, *replay.split("simulate.sh ", 1)[1].split())
    assert status == 1 and violations_of(again, seed) == violations_of(out, seed) != []
    assert again[-1].startswith("simulation: 1 schedules, ")


def test_the_simulation_finds_a_trigger_that_starts_a_redelivered_event_again(capsys,
                                                                              monkeypatch):
    """The triggers' mutation check: a trigger that starts its workflow for every delivery
    (no exactly-once) must be caught by the start invariant."""
    from ostinato._client import triggers

    def start_always(client, workflow_type, workflow_id, args, fresh=False):
        handle = client.start_workflow(workflow_type, *args, id=workflow_id,
                                       id_conflict_policy="use_existing")
        return triggers.Outcome("started", workflow_id, handle.run_id)

    monkeypatch.setattr(triggers, "start_once", start_always)
    status, out = simulate_lines(capsys, "--schedules", "30", "--seed", "0")
    assert status == 1 and not out[-1].endswith(" 0 violations")
    assert any(" times (runs " in line and "-t" in line for line in out), out[:20]


def test_the_simulation_finds_indexes_that_never_catch_up(capsys, monkeypatch):
    """The index lag's mutation check: a late index entry that never catches up (the table
    moves on, the list indexes keep the old head) must be caught by the index invariant."""
    def stuck(self, workflow_id, before):
        if self.index_lag is not None and self.index_lag():
            self._late.setdefault(workflow_id, before)

    def never_caught_up(self):
        for wid, item in self._heads.items():
            listed = self._late.get(wid, item)
            if listed is not None:
                yield listed

    monkeypatch.setattr(store_module.MemoryStore, "_index_write", stuck)
    monkeypatch.setattr(store_module.MemoryStore, "_indexed", never_caught_up)
    status, out = simulate_lines(capsys, "--schedules", "10", "--seed", "0")
    assert status == 1 and not out[-1].endswith(" 0 violations")
    assert any("index not converged" in line for line in out), out[:20]


#: Every kind of choice and fault the seeded scheduler makes, and the trigger deliveries.
KINDS = {"index lag", "handler order", "poller lag", "short batch", "reorder", "fifo group order",
         "duplicate", "delay", "batching window", "before", "after", "throttle",
         "lambda throttle", "slow invocation", "timeout", "timeout mid-batch", "crash",
         "guard: not started (WorkflowTask)", "stale read", "event delivered",
         "event delivered again", "triggered workflow"}


def test_every_choice_and_fault_kind_fires_and_a_seed_replays_its_counts():
    """Over 30 schedules each mechanism acts (reorders, duplicates, mid-batch timeouts,
    throttles, triggers, ...), and playing the same seeds again makes the same choices."""
    seeds = list(range(200, 230))
    first = simulate.run_seeds(seeds, "memory", 4, 0.04)
    assert first.violations == 0, first.failing[:1]
    missing = {kind for kind in KINDS if first.kinds[kind] == 0}
    assert not missing, dict(first.kinds)
    again = simulate.run_seeds(seeds, "memory", 4, 0.04)
    assert again.kinds == first.kinds and again.faults == first.faults
    assert (again.runs, again.actions) == (first.runs, first.actions)


def test_the_summary_prints_every_kind_and_keeps_its_last_line(capsys):
    status, out = simulate_lines(capsys, "--schedules", "3", "--seed", "40")
    kinds = next(line for line in out if line.startswith("choices and faults by kind: "))
    assert "reorder " in kinds and "short batch " in kinds
    assert out[-1] == "simulation: 3 schedules, 0 violations" and status == 0


def test_the_same_seed_draws_the_same_workload():
    import random
    rng_a, rng_b = random.Random(7), random.Random(7)
    a = [draw(rng_a, f"w{i}") for i in range(5)]
    b = [draw(rng_b, f"w{i}") for i in range(5)]
    assert a == b and any(p.steps != a[0].steps for p in a[1:])


def test_expected_follows_continue_as_new_rounds():
    plan = [["act", "a0", 1], ["local", "l1"]]
    assert expected(plan, "w", rounds=1) == ["W-A0-R1", "local w-l1-r1", "W-A0-R0",
                                             "local w-l1-r0"]


def ev(i: int, etype: str, **attrs: object) -> h.Event:
    return h.Event(i, etype, datetime(2026, 1, 1, tzinfo=UTC), attrs)


def test_history_check_names_each_broken_invariant():
    good = [ev(1, h.STARTED), ev(2, "ActivityTaskScheduled", seq=1),
            ev(3, "ActivityTaskCompleted", seq=1), ev(4, h.COMPLETED, result=1)]
    assert history_problems(good) == []
    gap = [*good[:2], ev(4, "ActivityTaskCompleted", seq=1)]
    assert any("contiguous" in p for p in history_problems(gap))
    twice = [*good[:3], ev(4, "ActivityTaskCompleted", seq=1), ev(5, h.COMPLETED)]
    assert any("duplicated" in p for p in history_problems(twice))
    after = [*good, ev(5, "TimerStarted", seq=2)]
    assert any("after the closing" in p for p in history_problems(after))


class OneRunStore:
    """Just enough of the Store port for `check_plan`: one run and its head."""

    def __init__(self, events, head):
        self.events, self.head = events, head

    def iter_events(self, run_id):
        return iter(self.events)

    def get_head(self, wid):
        return self.head

    def update_outcome(self, run_id, uid):
        return None


def test_plan_check_finds_a_wrong_result_a_stale_projection_and_a_stranded_run():
    from ostinato._engine.ports import Head
    plan = Plan("w", [["act", "a0", 0]])
    head = Head("w", "r1", "sim", h.Status.COMPLETED, 0.0, [])
    done = [ev(1, h.STARTED), ev(2, h.COMPLETED, result=["W-A0-R0"])]
    assert check_plan(OneRunStore(done, head), plan, "r1") == []
    wrong = [ev(1, h.STARTED), ev(2, h.COMPLETED, result=["nope"])]
    assert any("expected" in p for p in check_plan(OneRunStore(wrong, head), plan, "r1"))
    stale = Head("w", "r1", "sim", h.Status.RUNNING, 0.0, [])
    assert any("projection" in p for p in check_plan(OneRunStore(done, stale), plan, "r1"))
    open_run = [ev(1, h.STARTED)]
    assert any("stranded" in p for p in check_plan(OneRunStore(open_run, stale), plan, "r1"))
