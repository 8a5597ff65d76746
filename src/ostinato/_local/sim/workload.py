"""Random workloads over the whole model, each with the outcome it must end with.

One interpreter workflow, `sim`, runs a *plan*: a JSON list of steps (activities with
transient and permanent failures, parallel activities, heartbeats, local activities, timers,
signals, updates, callbacks, children under each close policy, waits that time out,
continue-as-new). `expected(plan, wid)` computes, without running anything, the result the
run must return; a `Plan` also says what the outside world does to each workflow
(signals, updates, callback completions, a cancel or a terminate) so a driver can play it.
A plan may also be started by an EventBridge event through the App's `EventTrigger`
(`trigger_event`), however often that event is delivered.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ... import EventTrigger
from ..._core.activity import activity_context
from ..._core.context import WorkflowContext
from ..._core.definitions import App, RetryPolicy, activity, workflow
from ..._core.errors import ActivityError, ApplicationError, ChildWorkflowError

#: Attempts each activity key started, across the whole schedule (at least once each).
executions: Counter[str] = Counter()
QUICK = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=0)


@activity(retry=QUICK, start_to_close_timeout=timedelta(minutes=5))
def sim_step(key: str, transient_failures: int = 0) -> str:
    """Fails its first `transient_failures` attempts, then returns `key` in upper case."""
    executions[key] += 1
    if activity_context().info.attempt <= transient_failures:
        raise ApplicationError(f"{key}: transient failure")
    return key.upper()


@activity(retry=QUICK)
def sim_fail(key: str) -> str:
    executions[key] += 1
    raise ApplicationError(f"{key}: refused", type="Refused", non_retryable=True)


@activity(retry=QUICK, heartbeat_timeout=timedelta(minutes=5))
def sim_progress(key: str) -> list[int]:
    """Heartbeats its progress; the first attempt dies half-way, the second resumes."""
    ctx = activity_context()
    executions[key] += 1
    done: list[int] = list(ctx.heartbeat_details or [])
    for part in range(len(done), 4):
        done.append(part)
        ctx.heartbeat(done)
        if ctx.info.attempt == 1 and part == 1:
            ctx.flush()
            raise ApplicationError(f"{key}: worker lost")
    return done


def sim_local(key: str) -> str:
    executions[key] += 1
    return f"local {key}"


@workflow
async def sim(ctx: WorkflowContext, plan: list[Any], wid: str, rounds: int = 0,
              carried: list[Any] | None = None) -> list[Any]:
    log: list[Any] = list(carried or [])
    signals: list[str] = []
    tokens: dict[str, str] = {}
    updates: list[int] = []
    ctx.on_signal("sig", signals.append)
    ctx.on_query("tokens", lambda: dict(tokens))

    async def update(value: int) -> int:
        await ctx.execute_activity(sim_step, f"{wid}-u{value}-r{rounds}")
        updates.append(value)
        return value * 2

    def validate(value: int) -> None:
        if value <= 0:
            raise ValueError("update values are positive")

    ctx.on_update("upd", update, validator=validate)
    for step in plan:
        log.append(await _run(ctx, step, wid, rounds, signals, tokens, updates))
    if rounds > 0:
        ctx.continue_as_new(plan, wid, rounds - 1, log)
    return log


async def _run(ctx: WorkflowContext, step: list[Any], wid: str, rounds: int,
               signals: list[str], tokens: dict[str, str], updates: list[int]) -> Any:
    kind, arg = step[0], step[1] if len(step) > 1 else 0
    key = f"{wid}-{arg}-r{rounds}"
    match kind:
        case "act":
            return await ctx.execute_activity(sim_step, key, step[2])
        case "fail":
            try:
                await ctx.execute_activity(sim_fail, key)
            except ActivityError as exc:
                return f"failed {type(exc.cause).__name__}"
            return "not failed"
        case "gather":
            keys = [f"{key}.{i}" for i in range(step[2])]
            return list(await asyncio.gather(*(ctx.execute_activity(sim_step, k) for k in keys)))
        case "progress":
            return await ctx.execute_activity(sim_progress, key)
        case "local":
            return await ctx.execute_local_activity(sim_local, key)
        case "timer":
            await ctx.sleep(arg)
            return f"slept {arg}"
        case "wait":  # nothing will ever make it true: the wait times out
            try:
                await ctx.wait_condition(lambda: False, timeout=arg)
            except TimeoutError:
                return "timed out"
            return "not timed out"
        case "signals":
            await ctx.wait_condition(lambda: len(signals) >= arg)
            return sorted(signals[:arg])
        case "updates":
            await ctx.wait_condition(lambda: len(updates) >= arg)
            return sorted(updates)
        case "callback":
            cb = ctx.create_callback(timeout=timedelta(days=2))
            tokens[str(arg)] = cb.token
            return await cb
        case "child":
            try:
                return await ctx.execute_child_workflow(
                    sim, [["act", "c", 1]], f"{key}-child", id=f"{key}-child",
                    parent_close_policy=step[2])
            except ChildWorkflowError as exc:
                return f"child failed {exc}"
    raise ValueError(f"unknown step {kind!r}")


def expected(plan: list[Any], wid: str, rounds: int = 0,
             carried: list[Any] | None = None) -> list[Any]:
    """The result `sim(plan, wid, rounds, carried)` must return, computed without running it."""
    log: list[Any] = list(carried or [])
    for r in range(rounds, -1, -1):
        for step in plan:
            log.append(_expect(step, wid, r))
    return log


def _expect(step: list[Any], wid: str, rounds: int) -> Any:
    kind, arg = step[0], step[1] if len(step) > 1 else 0
    key = f"{wid}-{arg}-r{rounds}"
    return {
        "act": lambda: key.upper(),
        "fail": lambda: "failed ApplicationError",
        "gather": lambda: [f"{key}.{i}".upper() for i in range(step[2])],
        "progress": lambda: [0, 1, 2, 3],
        "local": lambda: f"local {key}",
        "timer": lambda: f"slept {arg}",
        "wait": lambda: "timed out",
        "signals": lambda: sorted(signal_values(wid, arg)),
        "updates": lambda: list(range(1, arg + 1)),
        "callback": lambda: f"cb {wid} {arg}",
        "child": lambda: [f"{key}-child-c-r0".upper()],
    }[kind]()


def signal_values(wid: str, n: int) -> list[str]:
    return [f"{wid}-s{i}" for i in range(n)]


#: Events of this source and detail type start `sim` (DESIGN §2 Triggers): the detail holds
#: the plan, and its workflow id, so every delivery of one event, and every event a retrying
#: producer sends for one plan, must start one run. The trigger is declared through the public
#: `ostinato` package, as an App's author writes it (`_local` imports no `_client` module).
TRIGGER_SOURCE, TRIGGER_DETAIL_TYPE = "ostinato.sim", "SimPlan"
app = App(workflows=[sim], activities=[sim_step, sim_fail, sim_progress],
          triggers=[EventTrigger(sim, source=TRIGGER_SOURCE, detail_type=TRIGGER_DETAIL_TYPE,
                                 args=lambda event: [event["detail"]["steps"],
                                                     event["detail"]["wid"],
                                                     event["detail"]["rounds"]],
                                 id=lambda event: event["detail"]["wid"])])


def trigger_event(plan: Plan) -> dict[str, Any]:
    """The EventBridge event (as `WorkflowEnvironment.deliver_event` takes it) that starts
    `plan` through the trigger."""
    return {"source": TRIGGER_SOURCE, "detail-type": TRIGGER_DETAIL_TYPE,
            "detail": {"wid": plan.wid, "steps": plan.steps, "rounds": plan.rounds}}


@dataclass
class Plan:
    """One workflow of a workload and what the outside world does to it."""

    wid: str
    steps: list[Any]
    rounds: int = 0
    signals: int = 0
    updates: int = 0
    callbacks: list[str] = field(default_factory=list)
    ending: str = "complete"      # or "cancel" / "terminate" (sent at a random moment)

    @property
    def result(self) -> list[Any]:
        return expected(self.steps, self.wid, self.rounds)


def draw(rng: random.Random, wid: str, outside: bool = True) -> Plan:
    """A random plan: 2-6 steps over the whole model, and what the driver does to it
    (`outside` False: nothing, for a workflow an event starts: no signals, updates,
    callbacks, cancel or terminate, which need it to exist first)."""
    plan = Plan(wid, [])
    kinds = ["act", "act", "fail", "gather", "progress", "local", "timer", "wait", "child"]
    if outside:
        kinds[-1:-1] = ["signals", "updates", "callback"]
    for n in range(rng.randint(2, 6)):
        kind = rng.choice(kinds)
        match kind:
            case "act":
                plan.steps.append(["act", f"a{n}", rng.choice([0, 0, 1, 2])])
            case "gather":
                plan.steps.append(["gather", f"g{n}", rng.randint(2, 4)])
            case "timer":
                plan.steps.append(["timer", rng.choice([1, 30, 600, 3600 * 5])])
            case "wait":
                plan.steps.append(["wait", rng.choice([5, 120])])
            case "signals" if not plan.signals:
                plan.signals = rng.randint(1, 3)
                plan.steps.append(["signals", plan.signals])
            case "updates" if not plan.updates:
                plan.updates = rng.randint(1, 2)
                plan.steps.append(["updates", plan.updates])
            case "callback":
                plan.callbacks.append(f"k{n}")
                plan.steps.append(["callback", f"k{n}"])
            case "child":
                policy = rng.choice(["terminate", "request_cancel", "abandon"])
                plan.steps.append(["child", f"ch{n}", policy])
            case "signals" | "updates":
                plan.steps.append(["act", f"a{n}", 0])
            case _:
                plan.steps.append([kind, f"{kind[0]}{n}"])
    if not (plan.updates or plan.callbacks or plan.signals) and rng.random() < 0.3:
        plan.rounds = 1  # continue-as-new once (signals, updates and callbacks stay simple)
    roll = rng.random()
    if outside:
        plan.ending = "cancel" if roll < 0.1 else "terminate" if roll < 0.15 else "complete"
    return plan
