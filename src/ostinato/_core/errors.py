"""Every error a user of ostinato can see, in one place.

Errors raised by user code and engine outcomes cross process boundaries as plain JSON
(`Failure` dicts); `to_failure` and `from_failure` in `_serde` convert both ways.
"""

from __future__ import annotations

from typing import Any


class OstinatoError(Exception):
    """Base class of every ostinato error."""


class ApplicationError(OstinatoError):
    """An error raised by user code (workflow or activity) on purpose.

    Args:
        message: what went wrong.
        type: a name for the kind of error; defaults to the class name of the cause.
        non_retryable: when True an activity raising it is not retried.
        details: JSON-serialisable extra data.
    """

    def __init__(
        self,
        message: str,
        type: str | None = None,
        non_retryable: bool = False,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type or "ApplicationError"
        self.non_retryable = non_retryable
        self.details = details

    def __repr__(self) -> str:
        return f"ApplicationError({self.message!r}, type={self.type!r})"


class _CausedError(OstinatoError):
    """An error that wraps the failure that caused it in `.cause`."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        self.__cause__ = cause


class ActivityError(_CausedError):
    """Raised inside a workflow when an activity failed for good (retries exhausted)."""

    def __init__(
        self,
        message: str,
        cause: BaseException | None = None,
        *,
        activity_type: str = "",
        activity_id: int = 0,
        attempt: int = 0,
    ) -> None:
        super().__init__(message, cause)
        self.activity_type = activity_type
        self.activity_id = activity_id
        self.attempt = attempt


class ActivityCancelledError(OstinatoError):
    """Raised by `heartbeat()` inside an activity whose cancellation the workflow requested.

    Let it escape to report the attempt cancelled (`ActivityTaskCanceled`); an activity that
    catches it and returns or raises anyway reports that outcome instead, never retried.
    """


class ChildWorkflowError(_CausedError):
    """Raised inside a workflow when a child workflow failed."""


class CallbackError(_CausedError):
    """Raised inside a workflow when an external callback was failed by its holder."""


class WorkflowFailedError(_CausedError):
    """Raised by the client when the workflow it waits for failed."""


class WorkflowCancelledError(OstinatoError):
    """Raised by the client when the workflow it waits for was cancelled."""


class WorkflowTerminatedError(OstinatoError):
    """Raised by the client when the workflow it waits for was terminated."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class WorkflowTimedOutError(OstinatoError, TimeoutError):
    """Raised by the client when the workflow it waits for hit its execution timeout."""


class WorkflowAlreadyStartedError(OstinatoError):
    """Raised when starting a workflow whose id is already running (policy "fail")."""

    def __init__(self, workflow_id: str, run_id: str | None = None) -> None:
        super().__init__(f"workflow {workflow_id!r} is already running")
        self.workflow_id = workflow_id
        self.run_id = run_id


class WorkflowNotFoundError(OstinatoError):
    """Raised when no workflow (or run) exists with the given id."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} not found")
        self.workflow_id = workflow_id


class WorkflowClosedError(OstinatoError):
    """Raised when signalling or cancelling a workflow that already closed."""

    def __init__(self, workflow_id: str, status: str) -> None:
        super().__init__(f"workflow {workflow_id!r} is closed ({status})")
        self.workflow_id = workflow_id
        self.status = status


class CallbackNotFoundError(OstinatoError, LookupError):
    """No open workflow has a callback with this token."""


class CallbackClosedError(OstinatoError):
    """The callback was already completed, failed or timed out (a second completion)."""


class QueryRejectedError(OstinatoError):
    """Raised when a query cannot be answered (unknown name, failing handler, bad history)."""


class UpdateRejectedError(OstinatoError):
    """Raised when an update is refused by its validator or cannot be delivered."""


class NonDeterminismError(OstinatoError):
    """Replaying history through the current code issued different commands than recorded."""


class PayloadTooLargeError(OstinatoError):
    """A payload (arguments, result, signal) exceeds what the AWS services can carry."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes")
        self.what = what
        self.size = size
        self.limit = limit


class DataConversionError(ApplicationError):
    """A payload could not be encoded to JSON or decoded to the type its receiver declares.

    `boundary` names where (e.g. "arguments of activity 'charge'"), `python_type` the type.
    Not retryable: the same value fails the same way until the code changes."""

    def __init__(self, message: str, boundary: str = "", python_type: str = "") -> None:
        super().__init__(message, type="DataConversionError", non_retryable=True)
        self.boundary = boundary
        self.python_type = python_type


class PayloadIntegrityError(OstinatoError):
    """A stored payload cannot be read back as it was written: its S3 object is missing, its
    SHA-256 does not match the reference, or its codec cannot decode it. Raised instead of
    ever returning a wrong value; `ref` names the object (or the codec) at fault."""

    def __init__(self, message: str, ref: str = "") -> None:
        super().__init__(message)
        self.ref = ref


class UnknownTypeError(OstinatoError, LookupError):
    """A workflow or activity type name is not registered in the App."""


class InvalidScheduleError(OstinatoError, ValueError):
    """A schedule's name, expression, time zone, overlap policy or arguments are invalid."""


class ScheduleAlreadyExistsError(OstinatoError):
    """A schedule with this name exists already."""

    def __init__(self, name: str) -> None:
        super().__init__(f"schedule {name!r} already exists (delete it first to replace it)")
        self.name = name


class ScheduleNotFoundError(OstinatoError, LookupError):
    """No schedule has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"schedule {name!r} not found")
        self.name = name


class InvalidPageTokenError(OstinatoError, ValueError):
    """A page token that this stack did not issue (or for another listing)."""
