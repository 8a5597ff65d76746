"""The HTTP API's request and response models: what Powertools validates and `/openapi.json` shows.

Every constraint a route enforces is in these models, so the document promises no more and no
less than the routes accept: a request the document calls valid is never refused with a 400,
and one it calls invalid is never accepted. Where a rule is more than a type (a cron expression,
"exactly one of cron and rate", "`error` is required when status is failure"), the model
enforces it with a pattern or a validator and the schema says it with a pattern or `oneOf`.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Callable
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._client.client import RUN_ID, WORKFLOW_ID
from .._client.schedules import SCHEDULE_NAME
from .._core import cron as _cron
from .._core.errors import InvalidScheduleError

#: Workflow ids become SQS FIFO message group ids: 1-128 printable ASCII characters; no "/"
#: (ids are path segments) and no spaces.
WORKFLOW_ID_PATTERN = f"^{WORKFLOW_ID.pattern}$"
#: Signal, query and update names as path segments: anything but `/`.
HANDLER_NAME_PATTERN = r"^[^/]+$"
#: How path parameters are encoded (OpenAPI cannot say it): HTTP APIs decode the path twice
#: and cut it at a `?` the first decoding produced (see `_local.http_api`).
ADDRESSING = ("API Gateway decodes the path twice: encode `%` and `?` twice (`%2525`, "
              "`%253F`), everything else once, as the ostinato CLI does.")
#: `<base64url of [workflow_id, run_id, seq]>.<secret>` (`_core.context.callback_token`).
CALLBACK_TOKEN_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
#: Run ids are uuid hex (`_client.client.RUN_ID`).
RUN_ID_PATTERN = f"^{RUN_ID.pattern}$"
#: A `next_token` is base64url (opaque: pass back what a page answered).
NEXT_TOKEN_PATTERN = r"^[A-Za-z0-9_-]+={0,2}$"

Status = Literal["RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TERMINATED",  # = h.Status
                 "CONTINUED_AS_NEW", "TIMED_OUT"]


# -- the schedule expression grammar the API documents and enforces -----------------------------
def _digits(low: str, high: str) -> list[str]:
    """Regex alternatives matching the decimal numbers from `low` to `high`, both `n` digits."""
    if low == high:
        return [low]
    if len(low) == 1:
        return [f"[{low}-{high}]"]
    tail = len(low) - 1
    if low[1:] == "0" * tail and high[1:] == "9" * tail:
        return [f"[{low[0]}-{high[0]}]" + "[0-9]" * tail]
    if low[0] == high[0]:
        return [low[0] + rest for rest in _digits(low[1:], high[1:])]
    found = [low[0] + rest for rest in _digits(low[1:], "9" * tail)]
    if int(low[0]) + 1 <= int(high[0]) - 1:
        found += _digits(f"{int(low[0]) + 1}" + "0" * tail, f"{int(high[0]) - 1}" + "9" * tail)
    return found + [high[0] + rest for rest in _digits("0" * tail, high[1:])]


def integers(low: int, high: int) -> str:
    """A regex group matching the integers `low`..`high` (an optional leading zero allowed)."""
    alternatives: list[str] = []
    for width in range(len(str(low)), len(str(high)) + 1):
        first = max(low, 10 ** (width - 1) if width > 1 else 0)
        last = min(high, 10 ** width - 1)
        if first <= last:
            alternatives += _digits(str(first), str(last))
    return "0?(?:" + "|".join(alternatives) + ")"


def _field(low: int, high: int, names: dict[str, int] | None = None, ranges: bool = True) -> str:
    """A plain cron field: a list of `*`, `n` or `a-b` (a <= b), each optionally `/step`."""
    value = integers(low, high)
    spans = [f"{integers(a, a)}-{integers(a, high)}" for a in range(low, high + 1) if ranges]
    if names:
        by_number = sorted(names, key=names.__getitem__)
        value = f"(?:{value}|{'|'.join(by_number)})"
        spans += [f"{name}-(?:{'|'.join(by_number[i:])})" for i, name in enumerate(by_number)]
    base = "|".join([r"\*", *spans, value])
    item = f"(?:{base})(?:/[1-9][0-9]?)?"
    return f"{item}(?:,{item})*"


@functools.cache
def cron_pattern() -> str:
    """The cron expressions the API accepts: Scheduler's six fields `minutes hours
    day-of-month month day-of-week year`, exactly one day field `?`, bare or as `cron(...)`.

    A subset of what `_core.cron.parse_cron` accepts (uppercase names, single spaces, no year
    ranges, steps up to 99), so every expression it matches is one the schedule route takes.
    """
    minutes, hours = _field(0, 59), _field(0, 23)
    month = _field(1, 12, _cron.MONTHS)
    day_of_month = f"L|LW|{integers(1, 31)}W|{_field(1, 31)}"
    weekday = f"(?:{integers(1, 7)}|{'|'.join(_cron.WEEKDAYS)})"
    day_of_week = f"L|{weekday}L|{weekday}#[1-5]|{_field(1, 7, _cron.WEEKDAYS)}"
    year = _field(*_cron.YEARS, ranges=False)
    days = rf"(?:{day_of_month}) (?:{month}) \?|\? (?:{month}) (?:{day_of_week})"
    expression = f"(?:{minutes}) (?:{hours}) (?:{days}) (?:{year})"
    return rf"^(?:{expression}|cron\((?:{expression})\))$"


@functools.cache
def _cron_regex() -> re.Pattern[str]:
    return re.compile(cron_pattern())


def _cron_schema(schema: dict[str, Any]) -> None:
    _string_pattern(schema, cron_pattern())


_RATE = r"[1-9][0-9]{0,5} (?:minute|hour|day)s?"
RATE_PATTERN = rf"^(?:{_RATE}|rate\({_RATE}\))$"


@functools.cache
def _rate_regex() -> re.Pattern[str]:
    return re.compile(RATE_PATTERN)


def _rate_schema(schema: dict[str, Any]) -> None:
    _string_pattern(schema, RATE_PATTERN)


def _string_pattern(schema: dict[str, Any], pattern: str) -> None:
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch["pattern"] = pattern


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA zone names a schedule may use (read once, when first needed)."""
    return frozenset(zoneinfo.available_timezones())


def _zone_enum(schema: dict[str, Any]) -> None:
    schema["enum"] = sorted(time_zones())


class _Model(BaseModel):
    """Validators are built on first use (`defer_build`), not at import: a cold API function
    builds the models of the routes it serves, not all twenty."""

    model_config = ConfigDict(defer_build=True)


# -- requests -------------------------------------------------------------------------------------
class _Strict(_Model):
    model_config = ConfigDict(extra="forbid")


class StartWorkflowRequest(_Strict):
    workflow_type: str = Field(min_length=1, description="registered workflow type name")
    args: list[Any] = Field(default_factory=list, description="JSON arguments")
    id: str | None = Field(default=None, pattern=WORKFLOW_ID_PATTERN,
                           description="workflow id (default: a new UUID)")
    id_conflict_policy: Literal["fail", "use_existing"] = "fail"


class ArgsRequest(_Strict):
    args: list[Any] = Field(default_factory=list)


class UpdateWithStartRequest(_Strict):
    """Start the workflow (or attach to the running one) and run one update on it."""

    workflow_type: str = Field(min_length=1, description="registered workflow type name")
    args: list[Any] = Field(default_factory=list, description="JSON arguments of the workflow")
    id_conflict_policy: Literal["fail", "use_existing"] = Field(
        default="use_existing", description="the id is running: use_existing updates that "
        "run, fail answers 409 and updates nothing")
    update: str = Field(min_length=1, description="the update's name (`ctx.on_update`)")
    update_args: list[Any] = Field(default_factory=list, description="JSON arguments of the "
                                   "update")


class CallbackFailure(_Strict):
    message: str = Field(description="why the callback failed")
    type: str | None = Field(default=None, description='error type (default "CallbackFailure")')
    details: Any = Field(default=None, description="JSON details")


class CallbackRequest(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"properties": {"status": {"const": "failure"}, "error": {"not": {"type": "null"}}},
         "required": ["status", "error"]},
        {"properties": {"status": {"enum": ["success", "heartbeat"]}}},
    ]})

    status: Literal["success", "failure", "heartbeat"] = Field(
        description="success: complete with `result`; failure: fail with `error` (the "
                    "workflow's `await cb` raises CallbackError); heartbeat: still working")
    result: Any = Field(default=None, description="the callback's result (status success)")
    error: str | CallbackFailure | None = Field(
        default=None, description="a message or {message, type} (required for failure)")

    @model_validator(mode="after")
    def _failure_says_why(self) -> CallbackRequest:
        if self.status == "failure" and self.error is None:
            raise ValueError("`error` is required when status is failure")
        return self


class ReasonRequest(_Strict):
    reason: str | None = Field(default=None, max_length=2000)


class CreateScheduleRequest(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"properties": {"cron": {"type": "string"}}, "required": ["cron"]},
        {"properties": {"rate": {"type": "string"}}, "required": ["rate"]},
    ]})

    name: str = Field(pattern=f"^{SCHEDULE_NAME.pattern}$", description="unique schedule name")
    workflow_type: str = Field(min_length=1, description="registered workflow type name")
    args: list[Any] = Field(default_factory=list, description="JSON arguments of every run")
    cron: str | None = Field(
        default=None, description='e.g. "0 3 * * ? *" (give exactly one of cron and rate)',
        json_schema_extra=_cron_schema)
    rate: str | None = Field(default=None, json_schema_extra=_rate_schema,
                             description='e.g. "5 minutes" (give exactly one of cron and rate)')
    overlap: Literal["skip", "allow_all"] = Field(
        default="skip", description="skip: start nothing while the previous run is RUNNING")
    timezone: str = Field(default="UTC", json_schema_extra=_zone_enum,
                          description="IANA zone the cron expression is read in")

    @field_validator("cron")
    @classmethod
    def _cron_in_grammar(cls, value: str | None) -> str | None:
        if value is not None and not _cron_regex().fullmatch(value):
            _refuse(_cron.parse_cron, value, f"cron expression {value!r}: write the six fields "
                    "(minutes hours day-of-month month day-of-week year) as the document's "
                    "pattern does")
        return value

    @field_validator("rate")
    @classmethod
    def _rate_in_grammar(cls, value: str | None) -> str | None:
        if value is not None and not _rate_regex().fullmatch(value):
            _refuse(_cron.parse_rate, value, f"rate {value!r}: use 'N minutes', 'N hours' or "
                    "'N days' with N >= 1")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in time_zones():
            _refuse(_cron.timezone, value, f"unknown time zone {value!r}")
        return value

    @model_validator(mode="after")
    def _one_recurrence(self) -> CreateScheduleRequest:
        if (self.cron is None) == (self.rate is None):
            raise InvalidScheduleError("give exactly one of cron and rate")
        return self


def _refuse(parse: Callable[[str], object], value: str, otherwise: str) -> NoReturn:
    """`InvalidScheduleError` with the parser's own reason, or `otherwise` when the parser
    would take what the documented grammar leaves out."""
    try:
        parse(value)
    except ValueError as exc:
        raise InvalidScheduleError(str(exc)) from None
    raise InvalidScheduleError(otherwise)


class PutEventsEntry(_Strict):
    Source: str = Field(min_length=1, max_length=256)
    DetailType: str = Field(min_length=1, max_length=128)
    Detail: str | dict[str, Any] = Field(default="{}", description="JSON object (or its text)")
    Resources: list[str] | None = None
    EventBusName: Literal["default"] | None = Field(
        default=None, description="the default bus, the only one this API publishes to")


class PutEventsRequest(_Strict):
    """EventBridge PutEvents' request shape."""

    Entries: list[PutEventsEntry] = Field(min_length=1, max_length=10)


# -- responses ------------------------------------------------------------------------------------
class StartWorkflowResponse(_Model):
    workflow_id: str
    run_id: str


class ResultResponse(_Model):
    result: Any = None


class UpdateWithStartResponse(_Model):
    workflow_id: str
    run_id: str = Field(description="the run the update ran on (new, or the running one)")
    result: Any = Field(default=None, description="what the update handler returned")


class WorkflowResponse(_Model):
    workflow_id: str
    run_id: str
    workflow_type: str
    status: Status
    result: Any = None
    error: dict[str, Any] | None = None
    custom_status: Any = None
    start_time: str | None = None
    close_time: str | None = None


class ListResponse(_Model):
    workflows: list[WorkflowResponse]
    next_token: str | None = None


class HistoryResponse(_Model):
    """Also a history document: `ostinato replay` reads a saved response as is."""

    workflow_id: str
    run_id: str
    events: list[dict[str, Any]] = Field(
        description="event_id, event_type, timestamp, task and the event's attributes")
    tasks: list[dict[str, Any]] = Field(description="workflow-task boundaries, for replay")
    next_token: str | None = Field(
        default=None, description="more of the history follows: pass it back as next_token")


class ScheduleResponse(_Model):
    name: str
    workflow_type: str
    args: list[Any]
    expression: str
    timezone: str
    overlap: Literal["skip", "allow_all"]
    created_time: str
    next_fire_time: str | None = None
    last_fire_time: str | None = None
    last_workflow_id: str | None = None
    fired: int
    skipped: int


class ListSchedulesResponse(_Model):
    schedules: list[ScheduleResponse]


class PutEventsResponse(_Model):
    FailedEntryCount: int
    Entries: list[dict[str, Any]]


class ErrorBody(_Model):
    code: str
    message: str


class ErrorResponse(_Model):
    error: ErrorBody
