"""Heartbeat items of the DynamoDB adapter: `R#<run_id>` / `H#<seq>`.

One item per activity holds its last heartbeat details (with the attempt that wrote them)
and its cancel flag. The decider's outbox raises the flag once ActivityTaskCancelRequested
is in history; every heartbeat write is an UpdateItem that returns the item, so the attempt
reads the flag in the same request (no extra call per heartbeat).
"""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import UpdateError


def _condition_failed(exc: Exception) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


class HeartbeatItems:
    """The `Store` port's heartbeat methods (mixed into `_aws.store.Store`)."""

    _heartbeat: Any  # the pynamodb model of heartbeat items
    _put: Any  # the store's payload pipeline: value -> stored text (codec, S3 offload)
    _get: Any  # and back

    def save_heartbeat(self, run_id: str, seq: int, attempt: int, details: Any) -> bool:
        """Record details unless a later attempt already did (a stale attempt loses quietly);
        True when cancellation was requested (the same UpdateItem returns the flag)."""
        HB = self._heartbeat
        item = HB(f"R#{run_id}", f"H#{seq}")
        try:
            stored = self._put(details, "heartbeat details")
            item.update(actions=[HB.attempt.set(attempt), HB.details.set(stored)],
                        condition=HB.attempt.does_not_exist() | (HB.attempt <= attempt))
        except UpdateError as exc:
            if not _condition_failed(exc):
                raise
            return False
        return bool(item.cancel_requested)

    def load_heartbeat(self, run_id: str, seq: int) -> Any:
        """The last details saved (None if none)."""
        return self.heartbeat_state(run_id, seq)[0]

    def heartbeat_state(self, run_id: str, seq: int) -> tuple[Any, bool]:
        """The last details (None if none) and the cancel flag, in one read."""
        try:
            item = self._heartbeat.get(f"R#{run_id}", f"H#{seq}", consistent_read=True)
        except self._heartbeat.DoesNotExist:
            return None, False
        details = None if item.details is None else self._get(item.details)
        return details, bool(item.cancel_requested)

    def request_activity_cancel(self, run_id: str, seq: int) -> None:
        """Set the cancel flag once (a repeated request changes nothing)."""
        HB = self._heartbeat
        try:
            HB(f"R#{run_id}", f"H#{seq}").update(actions=[HB.cancel_requested.set(True)],
                                                 condition=HB.cancel_requested.does_not_exist())
        except UpdateError as exc:
            if not _condition_failed(exc):
                raise
