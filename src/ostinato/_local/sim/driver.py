"""Playing a workload against a `WorkflowEnvironment`, as the outside world would.

The driver starts every plan's workflow, then, in an order drawn from the seed, sends its
signals and updates, completes its callbacks once their tokens are visible, cancels or
terminates it, delivers the events that start the triggered plans (some more than once, as
EventBridge may, or sent again as a retrying producer would), and lets virtual time pass;
then it waits for everything to close and checks the invariants. With a `SeededScheduler`
(memory backend) every choice the stack leaves open is drawn from the seed too (`choices`).
Whatever the backend and whatever faults the environment injects, the same seed plays the
same way.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..._core import history as h
from ..._core import keys, wire
from ..._core.errors import OstinatoError, QueryRejectedError
from .choices import SeededScheduler
from .invariants import check_closed, check_index, check_plan, check_starts, first_run
from .workload import Plan, draw, expected, signal_values, sim, trigger_event

#: What the recurring schedule's runs do.
SCHEDULED: list[Any] = [["act", "a0", 1]]


@dataclass
class Outcome:
    """What one schedule did and found."""

    seed: int
    plans: list[Plan]
    triggered: list[Plan] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    actions: int = 0
    runs: int = 0            # workflows checked: the plans', their children, scheduled runs
    kinds: Counter[str] = field(default_factory=Counter)  # trigger deliveries, by kind


def play(env: Any, seed: int, workflows: int = 4, faults: Any = None,
         stale_reads: float = 0.2, scheduler: SeededScheduler | None = None) -> Outcome:
    """Run one schedule: `workflows` random plans (and up to two triggered ones) under
    `faults` (a context manager, e.g. a `FaultInjector`) and, on the memory backend, the
    choices of `scheduler` (else eventually consistent reads that miss the newest batch with
    probability `stale_reads`); then check every invariant with the faults lifted."""
    rng = random.Random(seed)
    plans = [draw(rng, f"s{seed}-w{i}") for i in range(workflows)]
    triggered = [draw(rng, f"s{seed}-t{i}", outside=False)
                 for i in range(rng.choice([0, 1, 1, 2]))]
    if scheduler is not None:
        scheduler.install(env)
    elif hasattr(env.client.store, "stale_read"):  # the memory table: eventually consistent
        lag = random.Random(seed * 7919 + 1)      # reads miss the newest batch at times
        env.client.store.stale_read = lambda: lag.random() < stale_reads
    outcome = Outcome(seed, plans, triggered)
    client = env.client
    first_runs: dict[str, str] = {}
    updates: dict[str, list[tuple[str, int]]] = {p.wid: [] for p in plans}
    todo: list[tuple[Plan, str, Any]] = []
    for plan in plans:
        todo += [(plan, "signal", v) for v in signal_values(plan.wid, plan.signals)]
        todo += [(plan, "update", v) for v in range(1, plan.updates + 1)]
        todo += [(plan, "callback", k) for k in plan.callbacks]
        if plan.ending != "complete":
            todo.append((plan, plan.ending, None))
    for plan in triggered:  # delivered once, twice or three times
        todo += [(plan, "event", None)] * rng.randint(1, 3)
    delivered: dict[str, dict[str, Any]] = {}
    schedule = f"sched{seed}" if rng.random() < 0.3 else None
    if schedule is not None:  # a recurring schedule, deleted at a random moment
        todo.append((Plan(schedule, []), "unschedule", None))
    rng.shuffle(todo)
    if schedule is not None:
        client.create_schedule(schedule, sim, SCHEDULED, schedule, rate="5 minutes",
                               overlap=rng.choice(["skip", "allow_all"]))
    if faults is not None:
        faults.__enter__()
    if scheduler is not None:
        scheduler.faulting = True
    try:
        for plan in plans:
            handle = client.start_workflow(sim, plan.steps, plan.wid, plan.rounds, id=plan.wid)
            first_runs[plan.wid] = handle.run_id
        horizon = env.clock() + 7 * 86400  # the workload's timers sum to at most 30 hours
        while todo and env.clock() < horizon:
            plan, action, value = todo.pop(0)
            if action == "event":  # the same event again, or a fresh one for the same plan
                again = delivered.get(plan.wid) if rng.random() < 0.5 else None
                outcome.kinds["event delivered again" if again else "event delivered"] += 1
                delivered[plan.wid] = env.deliver_event(again or trigger_event(plan))
                outcome.actions += 1
                env.sleep(rng.choice([0, 0, 1, 5, 60]))
            elif _act(env, plan, action, value, updates):
                outcome.actions += 1
                env.sleep(rng.choice([0, 0, 1, 5, 60]))
            else:  # not possible yet (no token to complete): try again later
                todo.append((plan, action, value))
                env.sleep(rng.choice([60, 600, 3600]))
        env.sleep(3 * 86400)  # every timer, retry and callback timeout falls due
    finally:
        if scheduler is not None:
            scheduler.faulting = False
        if faults is not None:
            faults.__exit__(None, None, None)
    env.sleep(86400)  # and with the faults lifted, every redelivery repairs what it must
    for plan in plans:
        outcome.violations += check_plan(client.store, plan, first_runs[plan.wid],
                                         updates[plan.wid])
    children = [f"{p.wid}-{s[1]}-r{r}-child" for p in plans for s in p.steps
                if s[0] == "child" for r in range(p.rounds + 1)]
    started = [wid for wid in children if client.store.get_head(wid) is not None]
    outcome.violations += check_closed(client.store, started)
    outcome.runs = len(plans) + len(started) + len(triggered)
    for plan in triggered:
        outcome.kinds["triggered workflow"] += 1
        run = first_run(client.store, plan.wid)
        if run is None:
            outcome.violations.append(f"{plan.wid}: its event was delivered, it never started")
        else:
            outcome.violations += check_plan(client.store, plan, run)
    outcome.violations += check_starts(client.store)
    if getattr(client.store, "index_lag", None) is not None:  # the indexes catch up now
        client.store.index_lag = None
    outcome.violations += check_index(client.store)
    if schedule is not None:
        fired = [d.workflow_id for d in client.list_workflows(workflow_type="sim")
                 if d.workflow_id.startswith(f"{schedule}-")]
        outcome.violations += check_closed(client.store, fired)
        outcome.runs += len(fired)
        for wid in fired:
            head = client.store.get_head(wid)
            if head is not None and head.status == "COMPLETED" and head.result != expected(
                    SCHEDULED, schedule):
                outcome.violations.append(f"{wid}: result {head.result!r}")
    return outcome


def _act(env: Any, plan: Plan, action: str, value: Any,
         updates: dict[str, list[tuple[str, int]]]) -> bool:
    """Do one outside action; False when it cannot be done yet (retry it later)."""
    client = env.client
    handle = client.get_workflow_handle(plan.wid)
    if action == "unschedule":
        client.delete_schedule(plan.wid)
        return True
    head = client.store.get_head(plan.wid)
    if head is not None and head.status != h.Status.RUNNING:
        return True  # closed already (cancelled, terminated): nothing left to do to it
    try:
        if action == "signal":
            handle.signal("sig", value, request_id=f"{plan.wid}-{value}")
        elif action == "update":
            uid = f"{plan.wid}-u{value}"
            assert head is not None
            client.transport.send_workflow_task(wire.Update(
                plan.wid, head.run_id, keys.update(uid), update_id=uid, name="upd",
                args=[value]))
            updates[plan.wid].append((uid, value))
        elif action == "callback":
            tokens = handle.query("tokens", timeout=0)
            if value not in tokens:
                return False
            client.complete_callback(tokens[value], f"cb {plan.wid} {value}")
        elif action == "cancel":
            handle.cancel("the simulation cancels it")
        elif action == "terminate":
            handle.terminate("the simulation terminates it")
    except (QueryRejectedError, TimeoutError):
        return False  # no workflow task has run yet
    except OstinatoError:
        pass  # it closed meanwhile: the action has nothing left to act on
    return True


def schedule_command(seed: int, workflows: int, *options: str) -> str:
    """The one-line command that replays `seed` exactly (`options`: the run's non-default
    ones, which the replay needs too)."""
    return " ".join(["scripts/simulate.sh", "--seed", str(seed), "--schedules", "1",
                     "--workflows", str(workflows), *options])


