"""ostinato: durable workflows as plain Python, serverless on your own AWS account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._client.triggers import EventTrigger
from ._core.activity import ActivityContext, ActivityInfo, activity_context
from ._core.context import WorkflowContext
from ._core.definitions import App, RetryPolicy, activity, workflow
from ._core.errors import (
    ActivityError,
    ApplicationError,
    CallbackClosedError,
    CallbackError,
    CallbackNotFoundError,
    ChildWorkflowError,
    DataConversionError,
    InvalidScheduleError,
    NonDeterminismError,
    OstinatoError,
    PayloadTooLargeError,
    QueryRejectedError,
    ScheduleAlreadyExistsError,
    ScheduleNotFoundError,
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
from ._core.history import Event
from ._core.instance import WorkflowInfo

if TYPE_CHECKING:
    from ._client.handle import WorkflowDescription, WorkflowHandle
    from ._runtime import Client

_LAZY = {"Client": "_runtime", "WorkflowDescription": "_client.handle",
         "WorkflowHandle": "_client.handle"}


def __getattr__(name: str) -> Any:
    """The client pulls in boto3 and pynamodb: import it on first use, so the pure core
    (and `ostinato replay`) load without the AWS SDK."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'ostinato' has no attribute {name!r}")

__all__ = [
    "ActivityContext",
    "ActivityError",
    "ActivityInfo",
    "App",
    "ApplicationError",
    "CallbackClosedError",
    "CallbackError",
    "CallbackNotFoundError",
    "ChildWorkflowError",
    "Client",
    "DataConversionError",
    "Event",
    "EventTrigger",
    "InvalidScheduleError",
    "NonDeterminismError",
    "OstinatoError",
    "PayloadTooLargeError",
    "QueryRejectedError",
    "RetryPolicy",
    "ScheduleAlreadyExistsError",
    "ScheduleNotFoundError",
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
