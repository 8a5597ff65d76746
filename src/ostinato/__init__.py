"""ostinato: durable workflows as plain Python, serverless on your own AWS account."""

from __future__ import annotations

from ._activity import ActivityContext, ActivityInfo, activity_context
from ._client import Client, WorkflowDescription, WorkflowHandle
from ._context import WorkflowContext
from ._definitions import App, RetryPolicy, activity, workflow
from ._errors import (
    ActivityError,
    ApplicationError,
    CallbackError,
    ChildWorkflowError,
    NonDeterminismError,
    OstinatoError,
    PayloadTooLargeError,
    QueryRejectedError,
    UnknownTypeError,
    UpdateRejectedError,
    WorkflowAlreadyStartedError,
    WorkflowCancelledError,
    WorkflowClosedError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowTerminatedError,
    WorkflowTimedOutError,
)
from ._history import Event
from ._instance import WorkflowInfo

__all__ = [
    "ActivityContext",
    "ActivityError",
    "ActivityInfo",
    "App",
    "ApplicationError",
    "CallbackError",
    "ChildWorkflowError",
    "Client",
    "Event",
    "NonDeterminismError",
    "OstinatoError",
    "PayloadTooLargeError",
    "QueryRejectedError",
    "RetryPolicy",
    "UnknownTypeError",
    "UpdateRejectedError",
    "WorkflowAlreadyStartedError",
    "WorkflowCancelledError",
    "WorkflowClosedError",
    "WorkflowContext",
    "WorkflowDescription",
    "WorkflowFailedError",
    "WorkflowHandle",
    "WorkflowInfo",
    "WorkflowNotFoundError",
    "WorkflowTerminatedError",
    "WorkflowTimedOutError",
    "activity",
    "activity_context",
    "workflow",
]
