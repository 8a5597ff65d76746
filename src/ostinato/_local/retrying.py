"""How the emulated AWS services retry their own failed calls, as the real ones do.

Lambda's SQS pollers retry a receive or delete that failed, and EventBridge (Scheduler and
rule targets) retries a delivery: a dropped connection inside the emulation must reach
neither the test nor the `ostinato dev` loop, only what the engine itself calls.
Only transient errors (a connection that failed or dropped, throttling, a 5xx) are retried;
anything else is the emulation's own bug and is raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

T = TypeVar("T")

#: Attempts per call: a fault rate of a few percent leaves nearly no chance of exhausting them.
ATTEMPTS = 10
#: Pause after the n-th failed attempt (seconds): short, the emulation runs locally.
PAUSE = 0.005
MAX_PAUSE = 0.2
RETRIED_CODES = frozenset({"ThrottlingException", "Throttling", "ServiceUnavailable",
                           "InternalServerError", "InternalFailure", "RequestThrottled"})


def transient(exc: BaseException) -> bool:
    """A failure a real AWS client or service would retry."""
    if isinstance(exc, (ConnectionError, HTTPClientError)):
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in RETRIED_CODES or int(status or 0) >= 500
    return False


def retrying(fn: Callable[..., T], *args: Any, attempts: int = ATTEMPTS,
             sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`, again after a transient failure, up to `attempts` times."""
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt == attempts or not transient(exc):
                raise
            sleep(min(PAUSE * 2 ** (attempt - 1), MAX_PAUSE))
    raise AssertionError("unreachable")
