"""Schedules: workflows started by EventBridge Scheduler recurring (cron / rate) schedules.

Two records per schedule:

- the EventBridge Scheduler schedule `sched-<name>` in the stack's schedule group, whose
  target is the trigger SQS queue with the input `{"ostinato": "schedule", "schedule":
  <name>, "scheduled_time": "<aws.scheduler.scheduled-time>"}`: Scheduler fills in the fire
  time, and the `events` function (the queue's consumer) calls `handle_firing`;
- the item `SCHEDULES` / `S#<name>` in the workflow table: the definition (workflow type,
  arguments, overlap policy) and the last firing handled (`last_fire`, `last_wid`).

Each firing starts the workflow `<name>-<fire time as YYYYMMDDTHHMMSSZ>`, at most once: the
firing is claimed by a conditional update that moves `last_fire` forward (so of two
deliveries of one firing one claims and the other sees it claimed, then only makes sure the
claimed start happened: `start_once`). A firing older than the schedule item is a late retry
for a deleted schedule of the same name, and dropped. With overlap "skip", the claim also
records that the firing was skipped because the previous run (`last_wid`) is still RUNNING,
so a repeated delivery of a skipped firing stays skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .._core import cron as _cron
from .._core import history as h
from .._core import keys
from .._core.definitions import type_name
from .._core.errors import InvalidScheduleError, ScheduleAlreadyExistsError, ScheduleNotFoundError
from .._core.serde import dumps, encode_payload
from .._engine.ports import ScheduleConflict, ScheduleRecord
from .starts import Outcome, Starter, start_once

OVERLAP_POLICIES: tuple[str, ...] = ("skip", "allow_all")
#: What `rate=` takes: "5 minutes", "rate(1 hour)", or a timedelta of whole minutes.
RateSpec = str | timedelta
#: Scheduler names are at most 64 characters, ours `sched-<name>` (`keys.recurring_schedule`).
SCHEDULE_NAME = re.compile(r"[0-9A-Za-z_.-]{1,58}")
MAX_CLAIM_RACES = 8
#: Scheduler fires within a minute of the scheduled time (flexible window off).
LATE_FIRING = 60.0


# errors: InvalidScheduleError, ScheduleAlreadyExistsError, ScheduleNotFoundError (_errors)


# -- what list_schedules shows ---------------------------------------------------------------
def _dt(stamp: float | None) -> datetime | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC)


@dataclass(frozen=True)
class ScheduleDescription:
    """A schedule: its definition and what its firings did so far."""

    name: str
    workflow_type: str
    args: list[Any]
    expression: str
    timezone: str
    overlap: str
    created_time: datetime
    next_fire_time: datetime | None
    last_fire_time: datetime | None
    last_workflow_id: str | None
    fired: int
    skipped: int

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {"name": self.name, "workflow_type": self.workflow_type, "args": self.args,
                "expression": self.expression, "timezone": self.timezone,
                "overlap": self.overlap, "created_time": iso(self.created_time),
                "next_fire_time": iso(self.next_fire_time),
                "last_fire_time": iso(self.last_fire_time),
                "last_workflow_id": self.last_workflow_id, "fired": self.fired,
                "skipped": self.skipped}


def _describe(item: ScheduleRecord, now: float) -> ScheduleDescription:
    recurrence = _cron.parse_expression(item.expression)
    # the occurrence after the last one handled (a rate's first is its start, at creation)
    after = item.last_fire if item.last_fire is not None else (
        item.anchor - 0.001 if item.anchor is not None else item.created)
    next_fire = recurrence.next_fire(after, item.timezone, item.anchor)
    if next_fire is not None and next_fire < now - LATE_FIRING:  # firings are not arriving
        next_fire = recurrence.next_fire(now, item.timezone, item.anchor)
    return ScheduleDescription(
        name=item.name, workflow_type=item.workflow_type, args=item.args,
        expression=item.expression, timezone=item.timezone, overlap=item.overlap,
        created_time=datetime.fromtimestamp(item.created, UTC),
        next_fire_time=_dt(next_fire), last_fire_time=_dt(item.last_fire),
        last_workflow_id=item.last_wid, fired=item.fired, skipped=item.skipped)


# -- the client's operations -------------------------------------------------------------------
def firing_workflow_id(name: str, fire_time: float) -> str:
    """The workflow id a firing of schedule `name` at `fire_time` starts."""
    return keys.firing_workflow_id(name, f"{datetime.fromtimestamp(fire_time, UTC):%Y%m%dT%H%M%SZ}")


def _recurrence(cron: str | None, rate: RateSpec | None) -> _cron.Recurrence:
    if (cron is None) == (rate is None):
        raise InvalidScheduleError("give exactly one of cron= and rate=")
    try:
        if cron is not None:
            return _cron.parse_cron(cron)
        assert rate is not None
        return _cron.parse_rate(rate)
    except ValueError as exc:
        raise InvalidScheduleError(str(exc)) from None


def create_schedule(client: Starter, name: str, workflow: Any, *args: Any,
                    cron: str | None = None, rate: RateSpec | None = None,
                    overlap: str = "skip", timezone: str = "UTC") -> ScheduleDescription:
    """Start `workflow(*args)` on every firing of `cron` or `rate`; see the module docstring.

    Args:
        name: 1-58 letters, digits, `-`, `_` or `.`; unique.
        cron: Scheduler's six fields, e.g. `"0 3 * * ? *"` (03:00 every day).
        rate: e.g. `"5 minutes"`, `"1 hour"`, `"2 days"`, or a timedelta of whole minutes.
        overlap: "skip" starts nothing while the previous run of the schedule is RUNNING;
            "allow_all" starts every firing.
        timezone: IANA zone the cron expression is read in.

    Raises:
        InvalidScheduleError: bad name, expression, time zone or overlap policy.
        UnknownTypeError: the workflow type is not registered in the client's App.
        PayloadTooLargeError: the arguments are too large to store.
        ScheduleAlreadyExistsError: the name is taken.
    """
    if not isinstance(name, str) or not SCHEDULE_NAME.fullmatch(name):
        raise InvalidScheduleError(f"schedule name {name!r}: use 1-58 letters, digits, "
                                   "'-', '_' or '.'")
    if overlap not in OVERLAP_POLICIES:
        raise InvalidScheduleError(f"overlap must be one of {OVERLAP_POLICIES}, not {overlap!r}")
    recurrence = _recurrence(cron, rate)
    try:
        _cron.timezone(timezone)
    except ValueError as exc:
        raise InvalidScheduleError(str(exc)) from None
    workflow_type = type_name(workflow, "workflow")
    client.check_workflow_type(workflow_type)  # UnknownTypeError before anything is written
    tree = encode_payload("schedule arguments", list(args))

    now = client.clock()
    anchor = float(int(now)) if isinstance(recurrence, _cron.Rate) else None
    record = ScheduleRecord(name, workflow_type, tree, recurrence.expression, timezone,
                            overlap, now, anchor)
    try:
        client.store.create_schedule(record)
    except ScheduleConflict:
        raise ScheduleAlreadyExistsError(name) from None
    firing = dumps({"ostinato": "schedule", "schedule": name,
                    "scheduled_time": "<aws.scheduler.scheduled-time>"})
    try:
        client.scheduler.put_recurring(keys.recurring_schedule(name), recurrence.expression,
                                       timezone, anchor, firing,
                                       f"ostinato: start workflow {workflow_type}")
    except ValueError as exc:
        client.store.delete_schedule(name)  # refused: the name is free again
        raise InvalidScheduleError(str(exc)) from None
    except BaseException:
        client.store.delete_schedule(name)  # failed: nothing half-written
        raise
    return _describe(record, now)


def list_schedules(client: Starter) -> list[ScheduleDescription]:
    """Every schedule, by name."""
    now = client.clock()
    return [_describe(item, now) for item in client.store.list_schedules()]


def delete_schedule(client: Starter, name: str) -> None:
    """Stop the schedule's firings and forget it; `ScheduleNotFoundError` if there is none.

    The Scheduler schedule goes first: a delete that stops half-way leaves a listed schedule
    that no longer fires (delete it again), never an unlisted one that still does.
    """
    if not SCHEDULE_NAME.fullmatch(name):  # no schedule has it (and Scheduler would refuse it)
        raise ScheduleNotFoundError(name)
    had_schedule = client.scheduler.delete_recurring(keys.recurring_schedule(name))
    if not client.store.delete_schedule(name) and not had_schedule:
        raise ScheduleNotFoundError(name)


# -- firings -----------------------------------------------------------------------------------
def _running(client: Starter, workflow_id: str) -> bool:
    head = client.store.get_head(workflow_id)
    return head is not None and head.status == h.Status.RUNNING


def handle_firing(client: Starter, name: str, scheduled_time: str) -> Outcome:
    """Start (at most once) the workflow of schedule `name`'s firing at `scheduled_time`.

    The firing is claimed by a conditional update of the schedule item that moves its last
    firing forward: of two deliveries of one firing, one claims it and the other only makes
    sure the claimed start happened.
    """
    fire_time = _cron.parse_iso(scheduled_time)
    wid = firing_workflow_id(name, fire_time)
    for _ in range(MAX_CLAIM_RACES):
        item = client.store.get_schedule(name)
        if item is None:
            return Outcome("dropped", wid, reason=f"schedule {name!r} no longer exists")
        if fire_time < item.created - LATE_FIRING:  # a retry from a deleted namesake
            return Outcome("dropped", wid, reason="fired before the schedule was created")
        last = item.last_fire
        if last is not None and last >= fire_time:  # handled before, or overtaken
            if last == fire_time and item.last_wid != wid:
                return Outcome("skipped", wid, reason=f"{item.last_wid} was still running")
            if last > fire_time and item.overlap == "skip":
                return Outcome("dropped", wid, reason="a later firing was handled first")
            return start_once(client, item.workflow_type, wid, item.args)
        previous: str | None = item.last_wid if item.overlap == "skip" else None
        if previous is not None and _running(client, previous):
            try:  # recorded as skipped, so a repeated delivery of this firing stays skipped
                client.store.claim_firing(name, fire_time, last, previous, skipped=True)
            except ScheduleConflict:
                continue
            return Outcome("skipped", wid, reason=f"{previous} is still running")
        try:
            client.store.claim_firing(name, fire_time, last, wid, skipped=False)
        except ScheduleConflict:
            continue
        return start_once(client, item.workflow_type, wid, item.args, fresh=True)
    raise RuntimeError(f"{MAX_CLAIM_RACES} racing deliveries on schedule {name!r}; retrying")
