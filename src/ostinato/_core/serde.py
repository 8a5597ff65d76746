"""JSON payloads and failures: how values and exceptions cross process boundaries."""

from __future__ import annotations

import json
import traceback
from typing import Any

from . import converter
from .errors import (
    ActivityError,
    ApplicationError,
    CallbackError,
    ChildWorkflowError,
    PayloadTooLargeError,
)

#: Largest encoded payload (arguments, results, signals) accepted anywhere. Payloads over
#: 128 KiB go to the stack's payload bucket and messages and items carry a reference
#: (`_engine/payloads.py`), so no SQS message or DynamoDB item nears its limit.
MAX_PAYLOAD_BYTES = 50 * 1024 * 1024

#: A failure (message, type, details, stack, causes) is cut to this, wherever it goes.
MAX_FAILURE_BYTES = 32 * 1024
#: A custom status is shown by describe and list: it must stay small.
MAX_STATUS_BYTES = 32 * 1024

Failure = dict[str, Any]


def dumps(value: Any) -> str:
    """Encode compactly; raises TypeError naming the culprit for non-JSON values."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(text: str) -> Any:
    return json.loads(text)


def encode_payload(what: str, value: Any, limit: int = MAX_PAYLOAD_BYTES) -> Any:
    """`value` as the JSON tree that is recorded and sent (see `converter`); raises
    `DataConversionError` for a value the converter cannot encode and
    `PayloadTooLargeError` when the encoded tree is over `limit` bytes."""
    tree = converter.encode(value, what)
    size = len(dumps(tree).encode())
    if size > limit:
        raise PayloadTooLargeError(what, size, limit)
    return tree


def to_failure(exc: BaseException) -> Failure:
    """Describe an exception as a JSON failure (type, message, retryability, cause chain)."""
    failure: Failure = {"message": str(exc) or type(exc).__name__}
    if isinstance(exc, ApplicationError):
        failure.update(kind="application", type=exc.type, non_retryable=exc.non_retryable)
        if exc.details is not None:
            failure["details"] = _details(exc.details)
    elif isinstance(exc, TimeoutError):
        failure.update(kind="timeout", type="TimeoutError")
    elif isinstance(exc, ActivityError):
        failure.update(kind="activity", type="ActivityError", activity_type=exc.activity_type)
    elif isinstance(exc, ChildWorkflowError):
        failure.update(kind="child", type="ChildWorkflowError")
    elif isinstance(exc, CallbackError):
        failure.update(kind="callback", type="CallbackError")
    else:
        failure.update(kind="application", type=type(exc).__name__, non_retryable=False)
    cause = getattr(exc, "cause", None) or exc.__cause__
    if cause is not None and cause is not exc:
        failure["cause"] = to_failure(cause)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=8))
    failure["stack"] = tb[-4000:]
    return bound_failure(failure)


def _details(details: Any) -> Any:
    try:
        return converter.encode(details, "error details")
    except ApplicationError:
        return repr(details)[:4000]  # a failure is always recorded, whatever its details


def _size(value: Any) -> int:
    try:
        return len(dumps(value).encode())
    except (TypeError, ValueError):
        return MAX_FAILURE_BYTES + 1


def bound_failure(failure: Failure, limit: int = MAX_FAILURE_BYTES) -> Failure:
    """`failure`, cut until it fits `limit` bytes: details first, then the stack, the message,
    and finally the causes. A failure travels in messages, history and the head item, so its
    size must never depend on what the code raised."""
    if _size(failure) <= limit:
        return failure
    cut = dict(failure)
    if "details" in cut:
        cut["details"] = None
        cut["details_dropped"] = "details were too large to record"
    for key, keep in (("stack", 2000), ("message", 4000)):
        if _size(cut) > limit and isinstance(cut.get(key), str):
            cut[key] = cut[key][:keep]
    if _size(cut) > limit and cut.get("cause"):
        cut["cause"] = bound_failure(cut["cause"], limit // 2)
    if _size(cut) > limit:
        cut.pop("cause", None)
    return cut


def from_failure(failure: Failure) -> BaseException:
    """Rebuild an exception from a failure: the builtin TimeoutError or an ApplicationError."""
    cause = from_failure(failure["cause"]) if failure.get("cause") else None
    kind = failure.get("kind")
    message = failure.get("message", "")
    exc: BaseException
    if kind == "timeout":
        exc = TimeoutError(message)
    elif kind == "activity":
        exc = ActivityError(message, cause, activity_type=failure.get("activity_type", ""))
    elif kind == "child":
        exc = ChildWorkflowError(message, cause)
    elif kind == "callback":
        exc = CallbackError(message, cause)
    else:
        exc = ApplicationError(
            message,
            type=failure.get("type"),
            non_retryable=bool(failure.get("non_retryable")),
            details=failure.get("details"),
        )
    if cause is not None:
        exc.__cause__ = cause
    return exc
