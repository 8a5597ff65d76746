"""`WorkflowEnvironment`: the real engine and handlers, in-process, on a virtual clock.

```python
with WorkflowEnvironment(app) as env:
    handle = env.client.start_workflow(order, ["a"], id="order-1")
    handle.signal("approve", "ann")
    assert handle.result()["approved_by"] == "ann"   # a 3-day wait takes milliseconds
```

Two backends (`backend=`, default from $OSTINATO_TEST_BACKEND, else `DEFAULT_BACKEND`):
"memory" keeps DynamoDB, SQS, Scheduler, EventBridge and S3 in memory (`_local/memory/`, held
to the AWS adapters' behaviour by the contract suite in tests/contract/); "moto" goes through
boto3 and pynamodb against moto, the full AWS API path (and the one `FaultInjector` faults).

The table, queues and schedule group come from `template.yaml`; messages travel through SQS
(memory or moto's), whose delays and visibility timeouts follow the virtual clock; the
`functions/` handlers are invoked with Lambda-shaped SQS events as event-source mappings
would; due Scheduler
schedules (one-time timers and recurring `cron()` / `rate()` schedules) are fired into their
targets; the template's EventBridge rules route events (`env.deliver_event`, or PutEvents
from any code in the environment) to the trigger queue. With `time_skipping`, whenever
nothing can run the clock jumps to the next due message or schedule firing.

An environment installs process-wide state (the handlers' runtime, moto's SQS clock), so
one runs at a time. Environments may nest in one thread: the inner one takes over, the
outer one is suspended (driving it raises `EnvironmentConflictError`) and resumes, with its
runtime and clock, when the inner one exits. Entering one while another thread's is active
raises `EnvironmentConflictError`.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import _runtime
from ._aws.settings import Settings
from ._core.definitions import App, seconds
from ._local.emulator import QueuePoller, SchedulerEmulator, import_handler
from ._local.faults import exempt, looking, running
from ._local.motoserver import EnvironmentConflictError
from ._local.template import default_template_path, load_template
from ._stack_client import Client

__all__ = ["EnvironmentConflictError", "VirtualClock", "WorkflowEnvironment"]

#: The entered environments, outermost first; only the last one may run.
_entered: list[WorkflowEnvironment] = []
_entering = threading.Lock()

#: Set as on Lambda, where the function's environment names the trigger queue.
TRIGGER_QUEUE_ENV = "OSTINATO_TRIGGER_QUEUE_ARN"
#: The backend of an environment that names none, unless $OSTINATO_TEST_BACKEND does.
DEFAULT_BACKEND = "memory"
BACKEND_ENV = "OSTINATO_TEST_BACKEND"
BACKENDS = ("memory", "moto")
#: How far virtual time may run ahead while waiting for one result, by default.
DEFAULT_HORIZON = timedelta(days=400).total_seconds()


_templates: dict[tuple[str, int, int], dict[str, Any]] = {}


def _parsed_template(path: Path) -> dict[str, Any]:
    """template.yaml parsed, once per version of the file (parsing it takes ~0.3 s)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _templates:
        _templates[key] = load_template(path)
    return copy.deepcopy(_templates[key])


class VirtualClock:
    """Seconds since the epoch, moved only by the environment."""

    def __init__(self, start: float) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    def advance_to(self, t: float) -> None:
        self._now = max(self._now, t)


class _EnvClient(Client):
    """A normal client whose waits drive the environment instead of polling."""

    env: WorkflowEnvironment

    def _wait_for(self, check: Callable[[], Any], timeout: float | None, what: str) -> Any:
        found: list[Any] = []

        def done() -> bool:
            with looking():  # the environment looking, not the code under test
                value = check()
            if value is not None:
                found.append(value)
            return value is not None

        self.env.run_until(done, timeout=timeout)
        return found[-1]


class WorkflowEnvironment:
    """See the module docstring.

    Args:
        app: the App whose workflows and activities run.
        time_skipping: jump virtual time to the next due timer when idle (else wait for it).
        start_time: the virtual clock's start (defaults to now).
        template: the SAM template to build resources from (defaults to ./template.yaml).
        backend: "memory" or "moto" (see the module docstring).
    """

    _instances = 0

    def __init__(self, app: App, time_skipping: bool = True, start_time: datetime | None = None,
                 template: str | Path | None = None, backend: str | None = None) -> None:
        chosen = backend or os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND
        if chosen not in BACKENDS:
            raise ValueError(f"unknown backend {chosen!r}: one of {', '.join(BACKENDS)}")
        self.backend = chosen
        self.app = app
        self.time_skipping = time_skipping
        start = (start_time or datetime.now(UTC)).timestamp()
        self.clock = VirtualClock(start) if time_skipping else time.time
        self._template_path = Path(template) if template else default_template_path()
        self._mock: Any = None
        self._sqs_clock: Any = None
        self.handler_errors: list[BaseException] = []
        self.pollers: list[Any] = []  # QueuePoller (moto) or MemoryPoller (memory)
        self._memory: Any = None  # the MemoryBackend
        #: fires due schedules: SchedulerEmulator (moto) or MemoryScheduler (memory)
        self.schedules: Any = None
        self.rules: list[Any] = []
        self._saved_env: dict[str, str | None] = {}
        self._previous_runtime: _runtime.Runtime | None = None
        self._installed = False
        self._thread: int | None = None
        self._queue_names: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> WorkflowEnvironment:
        with _entering:
            if _entered and _entered[-1]._thread != threading.get_ident():
                raise EnvironmentConflictError(
                    "another WorkflowEnvironment is active in another thread; environments "
                    "install process-wide state (the handlers' runtime, moto's SQS clock), so "
                    "two cannot run at once: run them one after the other, or nest them in "
                    "one thread")
            try:
                self._enter()
            except BaseException:
                self._restore()
                raise
            self._thread = threading.get_ident()
            _entered.append(self)
        return self

    def _enter(self) -> None:
        from ._client import triggers as _triggers

        _triggers.check_triggers(self.app)
        if self.backend == "memory":
            self._enter_memory()
        else:
            self._enter_moto()

    def _enter_memory(self) -> None:
        from ._aws.eventbus import EventBridgeBus
        from ._local import eventbus as _eventbus
        from ._local import template as _template
        from ._local.memory import MemoryBackend
        from ._local.memory.lambda_esm import MemoryPoller

        self._memory = backend = MemoryBackend(self.clock)
        template = _parsed_template(self._template_path)
        stack_name = "ostinato"
        self.stack = _template.create(template, backend, stack_name=stack_name,
                                      template_dir=self._template_path.parent)
        self.rules = _eventbus.create_rules(template, self.stack, backend, stack_name,
                                            _eventbus.local_parameters(template, self.app))
        self.settings = Settings.from_mapping(self.stack.environment)
        self._name_trigger_queue()
        self.sqs = backend.client("sqs")
        self.scheduler = backend.client("scheduler")
        self.runtime = _runtime.build(
            self.settings, self.app, clock=self.clock, client_cls=_EnvClient,
            store=backend.table, sqs=self.sqs, scheduler_client=self.scheduler,
            events=EventBridgeBus(self.settings.region, client=backend.client("events")),
            payload_store=backend.payloads)
        self._install_runtime()
        for mapping in self.stack.queue_mappings:
            handler = import_handler(mapping.handler, self.stack.code_root)
            self.pollers.append(MemoryPoller(mapping, handler,
                                             backend.sqs.by_url(mapping.queue_url),
                                             on_error=self._record_error))
        self.schedules = backend.scheduler
        self._size_decider_caches()

    def _size_decider_caches(self) -> None:
        """The engine here is every decider container at once: as many runs stay warm (sticky
        instances, cached histories) as the workflow-task mapping's concurrent invocations
        would keep, each in its own container (their byte and event budgets stay one
        container's). Else a test with more running workflows than one container keeps, all
        advancing together, would evict each run just before its next task and replay it."""
        deciders = max((p.mapping.concurrency for p in self.pollers if p.mapping.fifo),
                       default=1)
        decider = self.runtime.engine.decider
        decider.sticky.max_runs *= deciders
        decider.history.max_runs *= deciders

    def _name_trigger_queue(self) -> None:
        queue_arn = self.stack.environment.get(TRIGGER_QUEUE_ENV)
        if queue_arn:  # as on Lambda, where the function's environment names it
            self._saved_env[TRIGGER_QUEUE_ENV] = os.environ.get(TRIGGER_QUEUE_ENV)
            os.environ[TRIGGER_QUEUE_ENV] = queue_arn

    def _install_runtime(self) -> None:
        self.client: Client = self.runtime.client
        self.client.env = self  # type: ignore[attr-defined]
        self._previous_runtime = _runtime.install(self.runtime)  # the outer one's, or None
        self._installed = True

    def _enter_moto(self) -> None:
        from moto import mock_aws

        from ._local import eventbus as _eventbus
        from ._local import motoserver as _motolocal
        from ._local import template as _template

        _motolocal.serialize_dispatch()
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1"}.items():
            os.environ.setdefault(key, value)
        self._mock = mock_aws()
        self._mock.start()
        if self.time_skipping:
            self._sqs_clock = _motolocal.SqsClock(self.clock).__enter__()
        session = _motolocal.session()
        template = _parsed_template(self._template_path)
        WorkflowEnvironment._instances += 1  # moto's state is global: names must not clash
        stack_name = f"ostinato{WorkflowEnvironment._instances}"
        self.stack = _template.create(template, session, stack_name=stack_name,
                                      template_dir=self._template_path.parent)
        self.rules = _eventbus.create_rules(template, self.stack, session, stack_name,
                                            _eventbus.local_parameters(template, self.app))
        self.settings = Settings.from_mapping(self.stack.environment)
        self._name_trigger_queue()
        self.sqs = session.client("sqs")
        self.scheduler = session.client("scheduler")
        self.runtime = _runtime.build(self.settings, self.app, clock=self.clock,
                                      client_cls=_EnvClient)
        self.runtime.transport.sqs = self.sqs
        self.runtime.transport.scheduler._client = self.scheduler
        self._install_runtime()
        self._queue_names = {url.rsplit("/", 1)[-1]
                             for url in self.stack.queue_urls_by_arn.values()}
        for mapping in self.stack.queue_mappings:
            handler = import_handler(mapping.handler, self.stack.code_root)
            self.pollers.append(QueuePoller(mapping, handler, self.sqs,
                                            on_error=self._record_error))
        self.schedules = SchedulerEmulator(self.scheduler, self.sqs, self.stack.schedule_groups,
                                           self.stack.queue_urls_by_arn, clock=self.clock)
        self._size_decider_caches()

    def __exit__(self, *exc: object) -> None:
        with _entering:
            if self not in _entered:
                return
            if _entered[-1] is not self:
                raise EnvironmentConflictError(
                    "a WorkflowEnvironment entered after this one is still active: exit "
                    "environments in the reverse order of entering them")
            _entered.pop()
            self._restore()

    def _restore(self) -> None:
        """Undo what entering did (as far as it got), restoring the outer environment's."""
        if self._installed:
            _runtime.install(self._previous_runtime)
            self._installed, self._previous_runtime = False, None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        self._memory = None
        if self._sqs_clock is not None:
            self._sqs_clock.__exit__()
            self._sqs_clock = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None

    def _check_active(self) -> None:
        if _entered and _entered[-1] is not self:
            raise EnvironmentConflictError(
                "this WorkflowEnvironment is suspended: one entered after it is still active, "
                "and environments share process-wide state (the handlers' runtime, moto's SQS "
                "clock), so only the innermost one runs; exit that one first")

    def _record_error(self, _mapping: Any, exc: BaseException) -> None:
        self.handler_errors.append(exc)

    @property
    def engine(self) -> Any:
        return self.runtime.engine

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # -- driving ------------------------------------------------------------------------
    def step(self) -> int:
        """Fire due schedules, then run one round of every event-source mapping: as many
        invocations as it runs at once (its `concurrency`, one after the other here), fewer
        when its queue runs out of full batches; return messages handled."""
        self._check_active()
        with running():  # a test waiting on a result drives the environment from outside
            handled = self.schedules.fire_due(self.clock())
            for poller in self.pollers:
                mapping = getattr(poller, "mapping", None)  # a stand-in runs its own round
                for _ in range(max(1, mapping.concurrency) if mapping is not None else 1):
                    got = poller.poll()
                    handled += got
                    if mapping is None or got < mapping.batch_size:
                        break
        return handled

    def drain(self, max_rounds: int = 100_000) -> int:
        """Run until nothing is receivable at the current time."""
        total = 0
        for _ in range(max_rounds):
            handled = self.step()
            total += handled
            if not handled:
                return total
        raise RuntimeError("the environment did not settle")

    def next_due(self) -> float | None:
        from ._local.motoserver import next_sqs_due

        if self._memory is not None:
            return self._memory.next_due(self.clock())  # type: ignore[no-any-return]
        with running():
            scheduled = self.schedules.next_due()
        times = [t for t in (next_sqs_due(self.clock(), self._queue_names), scheduled)
                 if t is not None]
        return min(times) if times else None

    def run_until(self, done: Callable[[], bool], timeout: float | None = None,
                  horizon: float = DEFAULT_HORIZON) -> None:
        """Drive the engine until `done()`; `TimeoutError` if blocked for good.

        `timeout` bounds wall-clock seconds; `horizon` bounds virtual seconds.
        """
        wall_deadline = None if timeout is None else time.monotonic() + timeout
        virtual_limit = self.clock() + horizon
        while not done():
            if self.drain():
                continue
            if done():
                return
            if wall_deadline is not None and time.monotonic() > wall_deadline:
                raise TimeoutError(f"not done after {timeout}s")
            due = self.next_due()
            if due is None:
                raise TimeoutError("blocked: no message, timer or retry is on its way")
            if due > virtual_limit:
                raise TimeoutError("blocked: the next event is beyond the time horizon")
            self._wait_until(due)

    def _wait_until(self, due: float) -> None:
        if isinstance(self.clock, VirtualClock):
            self.clock.advance_to(due + 0.001)
        else:
            time.sleep(min(max(due - time.time(), 0.005), 0.25))

    def deliver_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Hand an EventBridge event to the triggers as EventBridge would, then run what can run.

        `event` is an EventBridge event (`source`, `detail-type`, `detail`, ...; missing
        envelope fields such as `id` and `time` are filled in) or a PutEvents entry
        (`Source`, `DetailType`, `Detail`). It goes, as is, to the queue of every rule of the
        template it matches, whose `events` function starts the matching triggers'
        workflows. Deliver the returned event again to see what a duplicate delivery does.
        """
        from ._local import eventbus as _eventbus

        self._check_active()
        full = _eventbus.as_event(event, self.clock())
        if self._memory is not None:
            self._memory.events.publish(full)
        else:
            with exempt():
                _eventbus.deliver(self.rules, full, self.sqs)
        self.drain()
        return full

    def sleep(self, duration: float | timedelta) -> None:
        """Advance virtual time by `duration`, running everything that falls due meanwhile."""
        target = self.clock() + (seconds(duration) or 0)
        while True:
            self.drain()
            due = self.next_due()
            if due is None or due > target:
                break
            self._wait_until(due)
        if isinstance(self.clock, VirtualClock):
            self.clock.advance_to(target)
        else:
            time.sleep(max(0.0, target - time.time()))
        self.drain()
