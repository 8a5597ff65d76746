"""The HTTP API's request and response models: what Powertools validates and the document shows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .._client.schedules import SCHEDULE_NAME

#: Workflow ids become SQS FIFO message group ids: 1-128 printable ASCII characters; no "/"
#: (ids are path segments) and no spaces.
WORKFLOW_ID_PATTERN = r"^[!-.0-~]{1,128}$"

Status = Literal["RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TERMINATED",  # = h.Status
                 "CONTINUED_AS_NEW", "TIMED_OUT"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartWorkflowRequest(_Strict):
    workflow_type: str = Field(min_length=1, description="registered workflow type name")
    args: list[Any] = Field(default_factory=list, description="JSON arguments")
    id: str | None = Field(default=None, pattern=WORKFLOW_ID_PATTERN,
                           description="workflow id (default: a new UUID)")
    id_conflict_policy: Literal["fail", "use_existing"] = "fail"


class ArgsRequest(_Strict):
    args: list[Any] = Field(default_factory=list)


class CallbackFailure(_Strict):
    message: str = Field(description="why the callback failed")
    type: str | None = Field(default=None, description='error type (default "CallbackFailure")')
    details: Any = Field(default=None, description="JSON details")


class CallbackRequest(_Strict):
    status: Literal["success", "failure", "heartbeat"] = Field(
        description="success: complete with `result`; failure: fail with `error` (the "
                    "workflow's `await cb` raises CallbackError); heartbeat: still working")
    result: Any = Field(default=None, description="the callback's result (status success)")
    error: str | CallbackFailure | None = Field(
        default=None, description="a message or {message, type} (required for failure)")


class ReasonRequest(_Strict):
    reason: str | None = Field(default=None, max_length=2000)


class StartWorkflowResponse(BaseModel):
    workflow_id: str
    run_id: str


class ResultResponse(BaseModel):
    result: Any = None


class WorkflowResponse(BaseModel):
    workflow_id: str
    run_id: str
    workflow_type: str
    status: Status
    result: Any = None
    error: dict[str, Any] | None = None
    custom_status: Any = None
    start_time: str | None = None
    close_time: str | None = None


class ListResponse(BaseModel):
    workflows: list[WorkflowResponse]
    next_token: str | None = None


class HistoryResponse(BaseModel):
    """Also a history document: `ostinato replay` reads a saved response as is."""

    workflow_id: str
    run_id: str
    events: list[dict[str, Any]] = Field(
        description="event_id, event_type, timestamp, task and the event's attributes")
    tasks: list[dict[str, Any]] = Field(description="workflow-task boundaries, for replay")


class CreateScheduleRequest(_Strict):
    name: str = Field(pattern=f"^{SCHEDULE_NAME.pattern}$", description="unique schedule name")
    workflow_type: str = Field(min_length=1, description="registered workflow type name")
    args: list[Any] = Field(default_factory=list, description="JSON arguments of every run")
    cron: str | None = Field(default=None, description='e.g. "0 3 * * ? *" (give cron or rate)')
    rate: str | None = Field(default=None, description='e.g. "5 minutes" (give cron or rate)')
    overlap: Literal["skip", "allow_all"] = Field(
        default="skip", description="skip: start nothing while the previous run is RUNNING")
    timezone: str = Field(default="UTC", description="IANA zone the cron expression is read in")


class ScheduleResponse(BaseModel):
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


class ListSchedulesResponse(BaseModel):
    schedules: list[ScheduleResponse]


class PutEventsEntry(_Strict):
    Source: str = Field(min_length=1, max_length=256)
    DetailType: str = Field(min_length=1, max_length=128)
    Detail: str | dict[str, Any] = Field(default="{}", description="JSON object (or its text)")
    Resources: list[str] | None = None
    EventBusName: str | None = None


class PutEventsRequest(_Strict):
    """EventBridge PutEvents' request shape."""

    Entries: list[PutEventsEntry] = Field(min_length=1, max_length=10)


class PutEventsResponse(BaseModel):
    FailedEntryCount: int
    Entries: list[dict[str, Any]]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
