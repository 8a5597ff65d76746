"""ostinato: durable workflows as plain Python, serverless on your own AWS account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._core.definitions import App, RetryPolicy, activity, workflow
from ._core.errors import (
    ActivityCancelledError,
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

if TYPE_CHECKING:
    from ._client.handle import WorkflowDescription, WorkflowHandle
    from ._client.triggers import EventTrigger
    from ._core.activity import ActivityContext, ActivityInfo, activity_context
    from ._core.context import WorkflowContext
    from ._core.history import Event
    from ._core.instance import WorkflowInfo
    from ._stack_client import Client

#: public name -> the module holding it, imported on first use of the name: each Lambda
#: handler loads only what its own path needs (the client pulls in boto3 and pynamodb, the
#: replay core asyncio; `ostinato replay` loads without the AWS SDK)
_LAZY = {"Client": "_stack_client", "WorkflowDescription": "_client.handle",
         "WorkflowHandle": "_client.handle", "EventTrigger": "_client.triggers",
         "ActivityContext": "_core.activity", "ActivityInfo": "_core.activity",
         "activity_context": "_core.activity", "WorkflowContext": "_core.context",
         "Event": "_core.history", "WorkflowInfo": "_core.instance"}


def __getattr__(name: str) -> Any:
    """A lazy public name (`_LAZY`), imported on first use and kept as an attribute."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ostinato' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

__all__ = [
    "ActivityCancelledError",
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
