"""The simulation's seeded scheduler: one object, seeded from the schedule's seed, that makes
every choice the memory stack leaves open, so that one seed replays exactly.

- which handler runs next: each round of the environment polls the queues in a drawn order
  (a drawn number of them, more only while nothing was handled);
- delivery within SQS semantics (`DeliveryChoices` of `memory/sqs.py`): a standard queue hands
  out any of its receivable messages in any order; a FIFO batch takes its message groups in a
  drawn order, each group's messages in order, one batch in flight per group; a deleted
  standard message is at times delivered again (at-least-once); a standard message at times
  arrives seconds later than it could, or at the end of its batching window (so that
  messages sent close together arrive together, in fuller batches);
- Lambda (`InvocationChoices` of `memory/lambda_esm.py`): batches of any size up to the
  mapping's; throttled invocations (the batch comes back after its visibility timeout);
  the Lambda context's remaining time, virtual: an invocation is at times slow (each AWS call
  costs a drawn share of its timeout, so the handlers' time guard sees the time run short,
  and an invocation that still overruns is killed at the call that crosses its timeout) or
  crashes at a drawn call;
- faults at every AWS call a handler makes (`plan`, a `FaultInjector` plan): a connection
  error before or after the call acts, a throttling refusal, or the kill of a slow or
  crashing invocation (before or after the call: between two calls nothing else is seen, so
  this is a kill at any point);
- eventually consistent reads that miss the newest batch (`stale_read`);
- list indexes that take a head's update late, and catch up at a later listing
  (`index_lag`), as a GSI lags its table.

Every choice that departs from the plain path is counted in `counts`, by kind.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from ..._engine.ports import Metric, Observer
from ..emulator import LambdaContext
from ..faults import Call
from ..memory.sqs import Message, Queue
from ..template import QueueMapping

#: The least remaining time a simulated context reports (seconds): an activity attempt's
#: wall-clock bound is what remains less the guard's 5 s margin, and it must stay long enough
#: for the workload's instant activities to finish whatever the machine's load (the kill at
#: the overrunning call is what ends an invocation whose time ran out).
FLOOR = 6.5
#: The shares of its timeout one AWS call of a slow invocation may take.
CALL_COSTS = (0.02, 0.02, 0.05, 0.1, 0.2, 0.4, 0.7)
#: Seconds of one batching window: a message held to it arrives at the window's end.
BATCHING_WINDOW = 30


@dataclass(frozen=True)
class Rates:
    """How often each choice departs from the plain path."""

    faults: float = 0.04          # AWS calls failed by a connection error, half before acting
    throttles: float = 0.01       # AWS calls refused with the service's throttling error
    duplicates: float = 0.03      # deleted standard-queue messages delivered again
    delays: float = 0.03          # standard-queue messages arriving late
    short_batches: float = 0.3    # receives asking for fewer than the batch size
    lambda_throttles: float = 0.01  # invocations Lambda throttles
    slow: float = 0.05            # invocations whose AWS calls eat their time
    slow_batches: float = 0.3     # the same, for invocations of more than one record
    crashes: float = 0.01         # invocations killed at a drawn call
    stale_reads: float = 0.2      # eventually consistent reads missing the newest batch
    index_lag: float = 0.2        # head writes the list indexes take late (and listings
                                  # that find a late entry still late)
    poller_lag: float = 0.05      # rounds in which a poller starts lagging
    batching_windows: float = 0.3  # batching windows of a standard queue that hold messages


@dataclass
class SimContext(LambdaContext):
    """A Lambda context whose remaining time is virtual: `timeout` less what the
    invocation's AWS calls cost (nothing, unless `slow`: then each costs a drawn share of the
    timeout, most a little, some much, as a call retried with back-off does); killed at the
    call that overruns it, or at call `crash_at`."""

    slow: bool = False
    crash_at: int = 0
    records: int = 1
    spent: float = 0.0
    calls: int = 0
    reads: int = 0
    killed: str | None = None

    def get_remaining_time_in_millis(self) -> int:
        self.reads += 1
        return int(max(FLOOR, self.timeout - self.spent) * 1000)

    def charge(self, rng: random.Random) -> str | None:
        """One AWS call made: None, or "kill before" / "kill after" it acts."""
        self.calls += 1
        if self.calls == self.crash_at:
            self.killed = "crash"
        elif self.slow:
            self.spent += self.timeout * rng.choice(CALL_COSTS)
            if self.spent > self.timeout:  # Lambda stops it: after a record, or in the first
                self.killed = ("timeout mid-batch" if self.records > 1 and self.reads >= 2
                               else "timeout")
        if self.killed is None:
            return None
        return rng.choice(["kill before", "kill after"])


class _Counting:
    """The engine's observer, counting the records the handlers' time guard did not start
    (by the function whose invocation it was)."""

    def __init__(self, inner: Observer, scheduler: SeededScheduler) -> None:
        self.inner, self.scheduler = inner, scheduler

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        context = self.scheduler.current
        if name == Metric.UNTOUCHED and context is not None:
            function = context.function_name.removesuffix("Function")
            self.scheduler.counts[f"guard: not started ({function})"] += int(value)
        self.inner.count(name, value, **dimensions)

    def duration(self, name: str, seconds: float, **dimensions: str) -> None:
        self.inner.duration(name, seconds, **dimensions)

    def span(self, name: str) -> AbstractContextManager[Any]:
        return self.inner.span(name)

    def flush(self) -> None:
        self.inner.flush()


class _Round:
    """Stands in for an environment's pollers: one round polls a drawn number of them in a
    drawn order, skipping the ones that lag (a poller lags a drawn number of rounds, its
    messages piling up into fuller batches), and polls the rest only if nothing was handled
    (so a round that can handle something does)."""

    def __init__(self, pollers: list[Any], scheduler: SeededScheduler) -> None:
        self.pollers, self.scheduler = pollers, scheduler
        self.lagging = [0] * len(pollers)  # rounds each poller still skips

    def poll(self) -> int:
        scheduler, rng = self.scheduler, self.scheduler.order_rng
        for i in range(len(self.pollers)):
            if self.lagging[i]:
                self.lagging[i] -= 1
            elif rng.random() < scheduler.rates.poller_lag:
                scheduler.counts["poller lag"] += 1
                self.lagging[i] = rng.randint(1, 12)
        order = rng.sample(range(len(self.pollers)), len(self.pollers))
        awake = [i for i in order if not self.lagging[i]]
        first = rng.randint(1, len(awake)) if awake else 0
        if awake[:first] != list(range(first)):
            scheduler.counts["handler order"] += 1
        handled = 0
        for i in awake[:first]:
            handled += self.pollers[i].poll()
        if not handled:
            for i in order:
                if i not in awake[:first]:
                    handled += self.pollers[i].poll()
        return handled

    def __iter__(self) -> Iterator[Any]:
        return iter(self.pollers)


@dataclass
class SeededScheduler:
    """Every choice of one schedule, drawn from `seed` (see the module docstring)."""

    seed: int
    rates: Rates = field(default_factory=Rates)
    counts: Counter[str] = field(default_factory=Counter)
    #: faults (kills, throttled invocations) are injected only while this is on
    faulting: bool = False
    current: SimContext | None = None
    #: (queue name, window number) -> whether that batching window holds its messages
    windows: dict[tuple[str, int], bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def stream(name: str) -> random.Random:
            return random.Random(f"{self.seed}:{name}")

        self.order_rng, self.delivery_rng = stream("order"), stream("delivery")
        self.invocation_rng, self.fault_rng = stream("invocation"), stream("faults")
        self.lag_rng, self.index_rng = stream("lag"), stream("index")

    def install(self, env: Any) -> None:
        """Make this the chooser of `env`, a memory `WorkflowEnvironment`."""
        pollers = list(env.pollers)
        for poller in pollers:
            poller.choices = self
        pollers[0].queue.sqs.choices = self
        env.pollers = [_Round(pollers, self)]
        env.client.store.stale_read = self.stale_read
        env.client.store.index_lag = self.index_lag
        env.engine.observer = _Counting(env.engine.observer, self)

    # -- delivery (memory/sqs.py DeliveryChoices) ------------------------------------------
    def pick(self, queue: Queue, receivable: list[Message], limit: int) -> list[Message]:
        k = min(limit, len(receivable))
        if len(receivable) < 2:
            return receivable[:k]
        chosen = self.delivery_rng.sample(receivable, k)
        if chosen != receivable[:k]:
            self.counts["reorder"] += 1
        return chosen

    def group_order(self, queue: Queue, groups: list[str | None]) -> list[str | None]:
        if len(groups) < 2:
            return groups
        order = self.delivery_rng.sample(groups, len(groups))
        if order != groups:
            self.counts["fifo group order"] += 1
        return order

    def redelivery(self, queue: Queue, message: Message) -> float | None:
        rng = self.delivery_rng
        if rng.random() >= self.rates.duplicates:
            return None
        self.counts["duplicate"] += 1
        return float(rng.choice([0, 1, 30, int(queue.visibility_timeout)]))

    def arrival(self, queue: Queue, due: float) -> float:
        rng, rates = self.delivery_rng, self.rates
        roll = rng.random()
        if roll < rates.delays:
            self.counts["delay"] += 1
            return due + rng.choice([1, 5, 20])
        window = math.ceil(due / BATCHING_WINDOW)
        held = self.windows.get((queue.name, window))
        if held is None:  # drawn once per queue and window: all its messages arrive together
            held = self.windows[queue.name, window] = rng.random() < rates.batching_windows
        if held:
            self.counts["batching window"] += 1
            return float(window * BATCHING_WINDOW)
        return due

    # -- Lambda (memory/lambda_esm.py InvocationChoices) -----------------------------------
    def batch_size(self, mapping: QueueMapping) -> int:
        rng = self.invocation_rng
        if mapping.batch_size > 1 and rng.random() < self.rates.short_batches:
            self.counts["short batch"] += 1
            return rng.randint(1, mapping.batch_size - 1)
        return mapping.batch_size

    def throttled(self, mapping: QueueMapping) -> bool:
        if not self.faulting or self.invocation_rng.random() >= self.rates.lambda_throttles:
            return False
        self.counts["lambda throttle"] += 1
        return True

    def begin(self, mapping: QueueMapping, records: int) -> SimContext:
        rng = self.invocation_rng
        context = SimContext(mapping.function, aws_request_id=f"sim-{rng.getrandbits(64):x}",
                             timeout=mapping.timeout, records=records)
        roll = rng.random() if self.faulting else 1.0
        slow = self.rates.slow if records == 1 else self.rates.slow_batches
        if roll < slow:
            self.counts["slow invocation"] += 1
            context.slow = True
        elif roll < slow + self.rates.crashes:
            context.crash_at = rng.randint(1, 12)
        self.current = context
        return context

    def end(self, context: Any) -> None:
        if isinstance(context, SimContext) and context.killed:
            self.counts[context.killed] += 1
        self.current = None

    # -- faults (a FaultInjector plan) and reads -------------------------------------------
    def plan(self, call: Call) -> str | None:
        """What happens to one AWS call a handler makes (see the module docstring)."""
        context = self.current
        if context is not None and call.in_handler:
            kill = context.charge(self.fault_rng)
            if kill is not None:
                return kill
        roll, rates = self.fault_rng.random(), self.rates
        if roll < rates.faults / 2:
            return "before"
        if roll < rates.faults:
            return "after"
        if roll < rates.faults + rates.throttles:
            return "throttle"
        return None

    def stale_read(self) -> bool:
        stale = self.lag_rng.random() < self.rates.stale_reads
        if stale:
            self.counts["stale read"] += 1
        return stale

    def index_lag(self) -> bool:
        late = self.index_rng.random() < self.rates.index_lag
        if late:
            self.counts["index lag"] += 1
        return late


def rates_for(fault_rate: float) -> Rates:
    """The default rates with AWS calls failing at `fault_rate`; 0 turns every fault off
    (throttling, kills, throttled invocations too), leaving the delivery choices."""
    if not fault_rate:
        return Rates(faults=0.0, throttles=0.0, lambda_throttles=0.0, slow=0.0, crashes=0.0)
    return Rates(faults=fault_rate)
