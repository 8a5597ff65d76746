"""Temporal's retry arithmetic, pure."""

from __future__ import annotations

from typing import Any

from .definitions import RetryPolicy


def backoff(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based) before the next one."""
    initial = policy.initial_interval.total_seconds()
    maximum = (policy.maximum_interval.total_seconds() if policy.maximum_interval is not None
               else initial * 100)
    return min(initial * policy.backoff_coefficient ** (attempt - 1), maximum)


def should_retry(policy: RetryPolicy, attempt: int, failure: dict[str, Any]) -> bool:
    """Whether a failed attempt is retried: retries left and the error is retryable."""
    if failure.get("non_retryable"):
        return False
    if failure.get("type") in policy.non_retryable_error_types:
        return False
    return policy.maximum_attempts == 0 or attempt < policy.maximum_attempts
