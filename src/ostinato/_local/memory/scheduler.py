"""EventBridge Scheduler in memory: one-time `at()` and recurring `cron()` / `rate()`
schedules in schedule groups, fired into their SQS targets on the environment's clock.

Firing follows `_local/emulator.py`'s `SchedulerEmulator` (what the moto path does): an
`at()` schedule fires once at its time, then is deleted if its ActionAfterCompletion says
DELETE; a recurring one fires at every occurrence in its time zone between StartDate and
EndDate while ENABLED, a rate counting from its StartDate (else its creation), a cron only at
occurrences after its creation; the target input gets Scheduler's context attributes filled
in; at most `MAX_CATCH_UP` firings per call when the clock jumped far ahead.

`MemoryScheduler.client()` answers the boto3 Scheduler calls the adapter
(`EventBridgeScheduler`) and the tests make, with the client's exception classes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from ..emulator import MAX_CATCH_UP, parse_at, render_input
from ..template import ACCOUNT
from .sqs import MemorySqs

REGION = "us-east-1"


class ConflictException(ClientError):
    pass


class ResourceNotFoundException(ClientError):
    pass


class ValidationException(ClientError):
    pass


class Exceptions:
    """`client.exceptions`, as boto3 generates it."""

    ConflictException = ConflictException
    ResourceNotFoundException = ResourceNotFoundException
    ValidationException = ValidationException
    ClientError = ClientError


def _error(cls: type[ClientError], message: str, operation: str) -> ClientError:
    return cls({"Error": {"Code": cls.__name__, "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


def _epoch(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


@dataclass
class _Schedule:
    definition: dict[str, Any]  # what GetSchedule answers
    start: float  # StartDate, else when it was created or last updated
    next_at: float | None


class MemoryScheduler:
    """Schedules by (group, name), fired into `sqs` (see the module docstring)."""

    def __init__(self, sqs: MemorySqs, clock: Callable[[], float]) -> None:
        self.sqs = sqs
        self.clock = clock
        self.lock = threading.RLock()
        self.groups: set[str] = {"default"}
        self.schedules: dict[tuple[str, str], _Schedule] = {}
        self.fired = 0

    # -- when -----------------------------------------------------------------------------
    @staticmethod
    def _next_recurring(definition: dict[str, Any], after: float, start: float
                        ) -> float | None:
        from ..._core.cron import parse_expression

        recurrence = parse_expression(definition["ScheduleExpression"])
        due = recurrence.next_fire(after, definition.get("ScheduleExpressionTimezone")
                                   or "UTC", start)
        end = _epoch(definition.get("EndDate"))
        return None if due is None or (end is not None and due > end) else due

    def _plan(self, definition: dict[str, Any]) -> _Schedule:
        expression = definition["ScheduleExpression"]
        if expression.startswith("at("):
            at = parse_at(expression)
            return _Schedule(definition, at or 0.0, at)
        start = _epoch(definition.get("StartDate"))
        inclusive = start is not None or not expression.startswith("cron(")
        if start is None:
            start = float(int(self.clock()))
        first = self._next_recurring(definition, start - 1 if inclusive else start, start)
        if definition.get("State", "ENABLED") != "ENABLED":
            first = None
        return _Schedule(definition, start, first)

    def next_due(self) -> float | None:
        with self.lock:
            times = [s.next_at for s in self.schedules.values() if s.next_at is not None]
        return min(times) if times else None

    # -- firing ---------------------------------------------------------------------------
    def fire_due(self, now: float) -> int:
        """Send every firing due by `now` to its target; return how many were sent."""
        fired = 0
        with self.lock:
            due = [(key, s) for key, s in self.schedules.items()
                   if s.next_at is not None and s.next_at <= now]
            for key, schedule in sorted(due, key=lambda ks: ks[1].next_at or 0.0):
                definition = schedule.definition
                if definition["ScheduleExpression"].startswith("at("):
                    self._send(definition, schedule.next_at or now)
                    fired += 1
                    schedule.next_at = None
                    if definition.get("ActionAfterCompletion", "NONE") == "DELETE":
                        del self.schedules[key]
                    continue
                next_at = schedule.next_at
                sent = 0
                while next_at is not None and next_at <= now:
                    if sent == MAX_CATCH_UP:
                        next_at = self._next_recurring(definition, now, schedule.start)
                        break
                    self._send(definition, next_at)
                    sent += 1
                    next_at = self._next_recurring(definition, next_at, schedule.start)
                schedule.next_at = next_at
                fired += sent
        self.fired += fired
        return fired

    def _send(self, definition: dict[str, Any], fire_time: float) -> None:
        target = definition["Target"]
        body = render_input(target.get("Input", "{}"), definition, fire_time)
        with self.sqs.lock:
            self.sqs.by_arn(target["Arn"]).send(body)

    def client(self) -> SchedulerClient:
        return SchedulerClient(self)


class SchedulerClient:
    """The boto3 Scheduler client calls the adapter and tests make, answered in memory."""

    exceptions = Exceptions

    def __init__(self, scheduler: MemoryScheduler) -> None:
        self._scheduler = scheduler

    def create_schedule_group(self, Name: str, **_: Any) -> dict[str, Any]:
        with self._scheduler.lock:
            if Name in self._scheduler.groups:
                raise _error(ConflictException, f"group {Name} exists", "CreateScheduleGroup")
            self._scheduler.groups.add(Name)
        return {"ScheduleGroupArn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/{Name}"}

    def _definition(self, operation: str, Name: str, ScheduleExpression: str,
                    Target: dict[str, Any], FlexibleTimeWindow: dict[str, Any],
                    GroupName: str = "default", **rest: Any) -> dict[str, Any]:
        from ..._core.cron import parse_expression

        if GroupName not in self._scheduler.groups:
            raise _error(ResourceNotFoundException, f"no schedule group {GroupName}", operation)
        try:
            if ScheduleExpression.startswith("at("):
                parse_at(ScheduleExpression)
            else:
                parse_expression(ScheduleExpression)
        except ValueError as exc:
            raise _error(ValidationException, f"Invalid Schedule Expression "
                         f"{ScheduleExpression}: {exc}", operation) from None
        now = datetime.fromtimestamp(math.floor(self._scheduler.clock()), UTC)
        return {"Name": Name, "GroupName": GroupName,
                "Arn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{GroupName}/{Name}",
                "ScheduleExpression": ScheduleExpression, "Target": dict(Target),
                "FlexibleTimeWindow": dict(FlexibleTimeWindow),
                "State": rest.pop("State", "ENABLED"), "LastModificationDate": now, **rest}

    def create_schedule(self, **request: Any) -> dict[str, Any]:
        scheduler = self._scheduler
        with scheduler.lock:
            key = (request.get("GroupName", "default"), request["Name"])
            if key in scheduler.schedules:
                raise _error(ConflictException, f"schedule {key[1]} exists", "CreateSchedule")
            definition = self._definition("CreateSchedule", **request)
            definition["CreationDate"] = definition["LastModificationDate"]
            scheduler.schedules[key] = scheduler._plan(definition)
        return {"ScheduleArn": definition["Arn"]}

    def update_schedule(self, **request: Any) -> dict[str, Any]:
        scheduler = self._scheduler
        with scheduler.lock:
            key = (request.get("GroupName", "default"), request["Name"])
            old = scheduler.schedules.get(key)
            if old is None:
                raise _error(ResourceNotFoundException, f"no schedule {key[1]}",
                             "UpdateSchedule")
            definition = self._definition("UpdateSchedule", **request)
            definition["CreationDate"] = old.definition["CreationDate"]
            scheduler.schedules[key] = scheduler._plan(definition)
        return {"ScheduleArn": definition["Arn"]}

    def delete_schedule(self, Name: str, GroupName: str = "default", **_: Any
                        ) -> dict[str, Any]:
        with self._scheduler.lock:
            if self._scheduler.schedules.pop((GroupName, Name), None) is None:
                raise _error(ResourceNotFoundException, f"no schedule {Name}", "DeleteSchedule")
        return {}

    def get_schedule(self, Name: str, GroupName: str = "default", **_: Any) -> dict[str, Any]:
        with self._scheduler.lock:
            schedule = self._scheduler.schedules.get((GroupName, Name))
            if schedule is None:
                raise _error(ResourceNotFoundException, f"no schedule {Name}", "GetSchedule")
            return dict(schedule.definition)

    def list_schedules(self, GroupName: str | None = None, NamePrefix: str = "",
                       **_: Any) -> dict[str, Any]:
        with self._scheduler.lock:
            found = [s.definition for (group, name), s in sorted(self._scheduler.schedules.items())
                     if (GroupName is None or group == GroupName) and name.startswith(NamePrefix)]
        return {"Schedules": [{"Name": d["Name"], "GroupName": d["GroupName"], "Arn": d["Arn"],
                               "State": d["State"], "Target": {"Arn": d["Target"]["Arn"]}}
                              for d in found]}
