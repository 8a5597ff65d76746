"""The pure replay core: history batches + workflow code -> state and new commands.

`Replayer.replay(batches)` re-executes the workflow through its recorded history, checking
that the code issues exactly the commands history recorded (else `NonDeterminismError`).
`Replayer.decide(...)` then applies new inbound events and returns the new decision.
No boto3, no clock, no I/O: the decider, queries, `ostinato replay` and tests share it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import history as h
from .definitions import ActivityDefinition, WorkflowDefinition
from .errors import NonDeterminismError, UpdateRejectedError
from .instance import WorkflowInfo, WorkflowInstance

EventData = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class LocalOutcome:
    """What running a local activity attempt gave: a result, a final failure, or a retry.

    `deferred`: the attempt did not run (the task's budget for local activities is spent,
    see `_engine.activities`); a later task runs it, at `retry_at`, as the same attempt.
    """

    attempt: int
    result: Any = None
    failure: dict[str, Any] | None = None
    retry_at: float | None = None
    deferred: bool = False

    @property
    def resolved(self) -> bool:
        return self.retry_at is None

    def retry_state(self) -> dict[str, Any]:
        """How a decision carries this unresolved attempt to a later task."""
        if self.deferred:
            return {"attempt": self.attempt, "at": self.retry_at, "deferred": True}
        return {"attempt": self.attempt + 1, "at": self.retry_at}

    def marker(self, cmd: h.RunLocalActivity) -> EventData:
        etype, attrs = cmd.event()
        attrs = {**attrs, "attempt": self.attempt}
        if self.failure is not None:
            attrs["failure"] = self.failure
        else:
            attrs["result"] = self.result
        return etype, attrs


LocalRunner = Callable[[h.RunLocalActivity, int], LocalOutcome]


@dataclass
class Decision:
    """The outcome of one workflow task."""

    events: list[EventData]
    commands: list[h.Command]
    status: str
    custom_status: Any = None
    result: Any = None
    failure: dict[str, Any] | None = None
    local_retries: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_run_id: str | None = None
    rejected_updates: dict[str, str] = field(default_factory=dict)

    @property
    def continues(self) -> bool:
        """Local activities were left for the next task to run at once (a deferral)."""
        return any(retry.get("deferred") for retry in self.local_retries.values())

    def state(self, close_time: float | None) -> dict[str, Any]:
        """The projection a batch carries, so describe never needs a replay."""
        state: dict[str, Any] = {"status": self.status, "custom_status": self.custom_status}
        if self.status != h.RUNNING:
            state.update(result=self.result, failure=self.failure, close_time=close_time)
        if self.new_run_id is not None:
            state["new_run_id"] = self.new_run_id
        if self.local_retries:
            state["local_retries"] = self.local_retries
        return state


def info_from_started(attrs: dict[str, Any], start_time: float) -> WorkflowInfo:
    return WorkflowInfo(
        workflow_id=attrs["workflow_id"], run_id=attrs["run_id"],
        workflow_type=attrs["workflow_type"], attempt=attrs.get("attempt", 1),
        start_time=datetime.fromtimestamp(start_time, UTC), parent=attrs.get("parent"),
        continued_from=attrs.get("continued_from"))


class Replayer:
    """Rebuilds one run from its history; see the module docstring."""

    def __init__(self, definition: WorkflowDefinition, info: WorkflowInfo,
                 activities: Mapping[str, ActivityDefinition] | None = None) -> None:
        self.definition = definition
        self.instance = WorkflowInstance(definition.fn, info, activities)

    # -- replaying history --------------------------------------------------------------
    def replay(self, batches: list[h.Batch]) -> None:
        self.instance.replaying = True
        try:
            for batch in batches:
                self._replay_batch(batch)
                self.instance.meter.settle(batch.events)
        finally:
            self.instance.replaying = False

    def _replay_batch(self, batch: h.Batch) -> None:
        inst = self.instance
        inst.loop.set_time(batch.time)
        recorded: deque[EventData] = deque(batch.events)
        if batch.decided:  # known before the inbound events apply: an update arriving with
            # the start runs the code from them (ensure_started), and it may create a
            # callback or reach a patch there
            inst.recorded_patch_ids = {
                attrs["patch_id"] for etype, attrs in recorded
                if etype == h.MARKER_RECORDED and attrs.get("marker") == "patch"}
            inst.recorded_callbacks = {attrs["seq"]: attrs["secret"] for etype, attrs in recorded
                                       if etype == h.CALLBACK_CREATED}
        while recorded and self._is_inbound(*recorded[0]):
            inst.apply(*recorded.popleft())
        if inst.terminated or not batch.decided:
            inst.recorded_patch_ids, inst.recorded_callbacks = set(), {}
            return
        self._rounds(recorded, None)
        inst.recorded_patch_ids, inst.recorded_callbacks = set(), {}
        if recorded:
            etype, attrs = recorded[0]
            raise NonDeterminismError(
                f"history event {batch.first_event_id + len(batch.events) - len(recorded)} "
                f"{etype} {_describe(attrs)} was not issued by the workflow code on replay")

    def _is_inbound(self, etype: str, attrs: dict[str, Any]) -> bool:
        if etype in h.INBOUND:
            return True
        return (etype == h.MARKER_RECORDED and attrs.get("marker") == "local_activity"
                and self.instance.is_pending_local(attrs["seq"]))

    # -- deciding -----------------------------------------------------------------------
    def decide(self, inbound: list[EventData], now: float, run_local: LocalRunner,
               local_retries: dict[str, dict[str, Any]] | None = None) -> Decision:
        """Apply new inbound events, run the code, and return what it decided."""
        inst = self.instance
        inst.loop.set_time(now)
        new_events: list[EventData] = []
        rejected: dict[str, str] = {}
        for event in inbound:
            if event[0] == h.UPDATE_ACCEPTED:
                inst.ensure_started()  # with the start: let the code register its handlers
                try:  # validators run once, before acceptance; never on replay
                    inst.validate_update(event[1]["name"], list(event[1].get("args") or []))
                except UpdateRejectedError as exc:
                    rejected[event[1]["update_id"]] = str(exc)
                    continue
            inst.apply(*event)
            new_events.append(event)
        retries: dict[str, dict[str, Any]] = {}
        if inst.terminated:
            return self._decision(new_events, [], retries)
        # local activities left pending by an earlier task: retry those that are due
        for cmd in inst.pending_local_activities:
            state = (local_retries or {}).get(str(cmd.seq), {"attempt": 1, "at": now})
            if state["at"] > now:
                retries[str(cmd.seq)] = state
                continue
            outcome = run_local(cmd, state["attempt"])
            if outcome.resolved:
                marker = outcome.marker(cmd)
                new_events.append(marker)
                inst.apply(*marker)
            else:
                retries[str(cmd.seq)] = outcome.retry_state()
        commands = self._rounds(None, (new_events, run_local, retries))
        decision = self._decision(new_events, commands, retries)
        decision.rejected_updates = rejected
        return decision

    def _rounds(self, recorded: deque[EventData] | None,
                fresh: tuple[list[EventData], LocalRunner, dict[str, dict[str, Any]]] | None,
                ) -> list[h.Command]:
        """Run the code round by round; match (replay) or record (fresh) each command."""
        inst = self.instance
        issued: list[h.Command] = []
        while True:
            inst.run()
            commands = inst.take_commands()
            resolved: list[EventData] = []
            for cmd in commands:
                if recorded is not None:
                    self._match(cmd, recorded, resolved)
                    continue
                assert fresh is not None
                new_events, run_local, retries = fresh
                if isinstance(cmd, h.RunLocalActivity):
                    outcome = run_local(cmd, 1)
                    if outcome.resolved:
                        new_events.append(outcome.marker(cmd))
                        resolved.append(outcome.marker(cmd))
                    else:
                        retries[str(cmd.seq)] = outcome.retry_state()
                    continue
                new_events.append(cmd.event())
                issued.append(cmd)
            for event in resolved:
                inst.apply(*event)
            if not resolved:
                return issued

    def _match(self, cmd: h.Command, recorded: deque[EventData],
               resolved: list[EventData]) -> None:
        if isinstance(cmd, h.RunLocalActivity):
            if recorded and recorded[0][0] == h.MARKER_RECORDED and cmd.matches(*recorded[0]):
                resolved.append(recorded.popleft())
            return  # no marker: it was still pending when this task was decided
        if not recorded:
            etype, attrs = cmd.event()
            raise NonDeterminismError(
                f"workflow code issued {etype} {_describe(attrs)} which history does not have")
        etype, attrs = recorded.popleft()
        if not cmd.matches(etype, attrs):
            mine, my_attrs = cmd.event()
            raise NonDeterminismError(
                f"history has {etype} {_describe(attrs)} where the workflow code now issues "
                f"{mine} {_describe(my_attrs)}")

    def _decision(self, events: list[EventData], commands: list[h.Command],
                  retries: dict[str, dict[str, Any]]) -> Decision:
        inst = self.instance
        decision = Decision(events, commands, h.RUNNING, inst.custom_status,
                            local_retries=retries)
        if inst.terminated:
            decision.status = h.Status.TERMINATED
        match inst.closed:
            case h.CompleteWorkflow(result=result):
                decision.status, decision.result = h.Status.COMPLETED, result
            case h.FailWorkflow(failure=failure):
                decision.status, decision.failure = h.Status.FAILED, failure
            case h.CancelWorkflow():
                decision.status = h.Status.CANCELLED
            case h.ContinueAsNew(new_run_id=new_run_id):
                decision.status, decision.new_run_id = h.Status.CONTINUED_AS_NEW, new_run_id
        return decision

    # -- queries ------------------------------------------------------------------------
    def query(self, name: str, args: list[Any]) -> Any:
        """Answer a query. What the handler changes through the context is put back, so a
        live (sticky) instance that answers one decides afterwards exactly as a replay would."""
        saved = self.instance.checkpoint()
        try:
            return self.instance.query(name, args)
        finally:
            self.instance.restore(saved)


def _describe(attrs: dict[str, Any]) -> str:
    keys = ("seq", "activity_type", "marker", "duration")
    return "(" + ", ".join(f"{k}={attrs[k]!r}" for k in keys if k in attrs) + ")"


def replay_history(definition: WorkflowDefinition, batches: list[h.Batch],
                   activities: Mapping[str, ActivityDefinition] | None = None) -> Replayer:
    """Replay a whole recorded history; raises `NonDeterminismError` on divergence."""
    started = batches[0].events[0]
    if started[0] != h.STARTED:
        raise ValueError("history must begin with WorkflowExecutionStarted")
    replayer = Replayer(definition, info_from_started(started[1], batches[0].time), activities)
    replayer.replay(batches)
    return replayer


def check_document(app: Any, doc: dict[str, Any]) -> Replayer:
    """Replay a history document (see `_history.to_document`) against `app`'s current code.

    Raises `NonDeterminismError` naming the first diverging event.
    """
    batches = h.from_document(doc)
    if not batches or not batches[0].events:
        raise ValueError("history has no events")
    workflow_type = batches[0].events[0][1].get("workflow_type")
    return replay_history(app.workflow(workflow_type), batches, app.activities)
