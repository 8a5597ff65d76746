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

import functools
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.models import Model

from .._core import cron as _cron
from .._core import history as h
from .._core.definitions import type_name
from .._core.errors import InvalidScheduleError, ScheduleAlreadyExistsError, ScheduleNotFoundError
from .._core.serde import check_payload, dumps, loads
from .starts import Outcome, start_once

if TYPE_CHECKING:
    from .client import Client

OVERLAP_POLICIES: tuple[str, ...] = ("skip", "allow_all")
#: What `rate=` takes: "5 minutes", "rate(1 hour)", or a timedelta of whole minutes.
RateSpec = str | timedelta
#: Scheduler names are at most 64 characters; ours carry this prefix (timers use "ost-").
SCHEDULER_PREFIX = "sched-"
SCHEDULE_NAME = re.compile(r"[0-9A-Za-z_.-]{1,58}")
PARTITION = "SCHEDULES"
TRIGGER_QUEUE_ENV = "OSTINATO_TRIGGER_QUEUE_ARN"
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


# -- storage -----------------------------------------------------------------------------------
@functools.cache
def _model(table_name: str, region: str) -> Any:
    """The schedule item, bound to the workflow table (attribute names stay out of its indexes)."""

    meta = type("Meta", (), {"table_name": table_name, "region": region})

    class ScheduleItem(Model):
        Meta = meta  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        wf_type = UnicodeAttribute()
        args = UnicodeAttribute()
        expression = UnicodeAttribute()
        tz = UnicodeAttribute()
        overlap = UnicodeAttribute()
        created = NumberAttribute()
        anchor = NumberAttribute(null=True)  # rate schedules count from here (StartDate)
        last_fire = NumberAttribute(null=True)
        last_wid = UnicodeAttribute(null=True)
        fired = NumberAttribute(default=0)
        skipped = NumberAttribute(default=0)

    return ScheduleItem


def _items(client: Client) -> Any:
    return _model(client.store.table_name, client.settings.region)


def _conditional_failed(exc: Exception) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def _get(item_cls: Any, name: str) -> Any:
    try:
        return item_cls.get(PARTITION, f"S#{name}", consistent_read=True)
    except item_cls.DoesNotExist:
        return None


def _describe(item: Any, now: float) -> ScheduleDescription:
    recurrence = _cron.parse_expression(item.expression)
    anchor = None if item.anchor is None else float(item.anchor)
    last_fire = None if item.last_fire is None else float(item.last_fire)
    # the occurrence after the last one handled (a rate's first is its start, at creation)
    after = last_fire if last_fire is not None else (
        anchor - 0.001 if anchor is not None else float(item.created))
    next_fire = recurrence.next_fire(after, item.tz, anchor)
    if next_fire is not None and next_fire < now - LATE_FIRING:  # firings are not arriving
        next_fire = recurrence.next_fire(now, item.tz, anchor)
    return ScheduleDescription(
        name=item.sk[2:], workflow_type=item.wf_type, args=loads(item.args),
        expression=item.expression, timezone=item.tz, overlap=item.overlap,
        created_time=datetime.fromtimestamp(float(item.created), UTC),
        next_fire_time=_dt(next_fire), last_fire_time=_dt(last_fire),
        last_workflow_id=item.last_wid, fired=int(item.fired or 0),
        skipped=int(item.skipped or 0))


# -- the client's operations -------------------------------------------------------------------
def firing_workflow_id(name: str, fire_time: float) -> str:
    """The workflow id a firing of schedule `name` at `fire_time` starts."""
    return f"{name}-{datetime.fromtimestamp(fire_time, UTC):%Y%m%dT%H%M%SZ}"


def scheduler_name(name: str) -> str:
    return SCHEDULER_PREFIX + name


def trigger_queue_arn(client: Client) -> str:
    """The SQS queue Scheduler delivers firings to (template.yaml's TriggerQueue)."""
    arn = getattr(client.settings, "trigger_queue_arn", "") or os.environ.get(
        TRIGGER_QUEUE_ENV, "")
    if not arn:
        raise RuntimeError(f"{TRIGGER_QUEUE_ENV} is not set: schedules need the trigger "
                           "queue of template.yaml (TriggerQueue)")
    return str(arn)


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


def create_schedule(client: Client, name: str, workflow: Any, *args: Any,
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
    client.app.workflow(workflow_type)  # UnknownTypeError before anything is written
    check_payload("schedule arguments", list(args))
    queue_arn = trigger_queue_arn(client)

    now = client.clock()
    anchor = float(int(now)) if isinstance(recurrence, _cron.Rate) else None
    Item = _items(client)
    item = Item(PARTITION, f"S#{name}", wf_type=workflow_type, args=dumps(list(args)),
                expression=recurrence.expression, tz=timezone, overlap=overlap,
                created=now, anchor=anchor, fired=0, skipped=0)
    try:
        item.save(condition=Item.pk.does_not_exist())
    except PutError as exc:
        if _conditional_failed(exc):
            raise ScheduleAlreadyExistsError(name) from None
        raise
    try:
        _put_scheduler_schedule(client, name, recurrence, timezone, anchor, queue_arn,
                                workflow_type)
    except BaseException:
        item.delete()  # refused (or failed): the name is free again, nothing half-written
        raise
    return _describe(item, now)


def _put_scheduler_schedule(client: Client, name: str, recurrence: _cron.Recurrence,
                            timezone: str, anchor: float | None, queue_arn: str,
                            workflow_type: str) -> None:
    scheduler = client.transport.scheduler
    request: dict[str, Any] = {
        "Name": scheduler_name(name), "GroupName": client.settings.schedule_group,
        "ScheduleExpression": recurrence.expression, "ScheduleExpressionTimezone": timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"}, "State": "ENABLED",
        "Description": f"ostinato: start workflow {workflow_type}"[:512],
        "Target": {"Arn": queue_arn, "RoleArn": client.settings.scheduler_role_arn,
                   "Input": dumps({"ostinato": "schedule", "schedule": name,
                                   "scheduled_time": "<aws.scheduler.scheduled-time>"})}}
    if anchor is not None:
        request["StartDate"] = datetime.fromtimestamp(anchor, UTC)
    try:
        scheduler.create_schedule(**request)
    except scheduler.exceptions.ConflictException:
        # left behind by a delete that stopped half-way; the table item is the name's owner
        scheduler.update_schedule(**request)
    except scheduler.exceptions.ValidationException as exc:
        raise InvalidScheduleError(f"EventBridge Scheduler refused the schedule: {exc}") from None


def list_schedules(client: Client) -> list[ScheduleDescription]:
    """Every schedule, by name."""
    Item = _items(client)
    now = client.clock()
    return [_describe(item, now)
            for item in Item.query(PARTITION, Item.sk.startswith("S#"), consistent_read=True)]


def delete_schedule(client: Client, name: str) -> None:
    """Stop the schedule's firings and forget it; `ScheduleNotFoundError` if there is none.

    The Scheduler schedule goes first: a delete that stops half-way leaves a listed schedule
    that no longer fires (delete it again), never an unlisted one that still does.
    """
    scheduler = client.transport.scheduler
    had_schedule = True
    try:
        scheduler.delete_schedule(Name=scheduler_name(name),
                                  GroupName=client.settings.schedule_group)
    except scheduler.exceptions.ResourceNotFoundException:
        had_schedule = False
    Item = _items(client)
    try:
        Item(PARTITION, f"S#{name}").delete(condition=Item.pk.exists())
    except DeleteError as exc:
        if not _conditional_failed(exc):
            raise
        if not had_schedule:
            raise ScheduleNotFoundError(name) from None


# -- firings -----------------------------------------------------------------------------------
class _Claimed(Exception):
    """Another delivery changed the schedule's last firing first."""


def _claim(Item: Any, name: str, fire_time: float, expected: float | None, wid: str,
           skipped: bool) -> None:
    """Record `fire_time` as the last firing handled, unless another delivery moved it first."""
    counter = Item.skipped if skipped else Item.fired
    unchanged = (Item.last_fire.does_not_exist() if expected is None
                 else Item.last_fire == expected)
    try:
        Item(PARTITION, f"S#{name}").update(
            actions=[Item.last_fire.set(fire_time), Item.last_wid.set(wid), counter.add(1)],
            condition=Item.pk.exists() & unchanged)
    except UpdateError as exc:
        if _conditional_failed(exc):
            raise _Claimed() from None
        raise


def _running(client: Client, workflow_id: str) -> bool:
    head = client.store.get_head(workflow_id)
    return head is not None and head.status == h.RUNNING


def handle_firing(client: Client, name: str, scheduled_time: str) -> Outcome:
    """Start (at most once) the workflow of schedule `name`'s firing at `scheduled_time`."""
    fire_time = _cron.parse_iso(scheduled_time)
    wid = firing_workflow_id(name, fire_time)
    Item = _items(client)
    for _ in range(MAX_CLAIM_RACES):
        item = _get(Item, name)
        if item is None:
            return Outcome("dropped", wid, reason=f"schedule {name!r} no longer exists")
        if fire_time < float(item.created) - LATE_FIRING:  # a retry from a deleted namesake
            return Outcome("dropped", wid, reason="fired before the schedule was created")
        args = loads(item.args)
        last = None if item.last_fire is None else float(item.last_fire)
        if last is not None and last >= fire_time:  # handled before, or overtaken
            if last == fire_time and item.last_wid != wid:
                return Outcome("skipped", wid, reason=f"{item.last_wid} was still running")
            if last > fire_time and item.overlap == "skip":
                return Outcome("dropped", wid, reason="a later firing was handled first")
            return start_once(client, item.wf_type, wid, args)
        previous: str | None = item.last_wid if item.overlap == "skip" else None
        if previous is not None and _running(client, previous):
            try:  # recorded as skipped, so a repeated delivery of this firing stays skipped
                _claim(Item, name, fire_time, last, previous, skipped=True)
            except _Claimed:
                continue
            return Outcome("skipped", wid, reason=f"{previous} is still running")
        try:
            _claim(Item, name, fire_time, last, wid, skipped=False)
        except _Claimed:
            continue
        return start_once(client, item.wf_type, wid, args, fresh=True)
    raise RuntimeError(f"{MAX_CLAIM_RACES} racing deliveries on schedule {name!r}; retrying")
