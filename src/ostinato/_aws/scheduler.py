"""EventBridge Scheduler: one-time `at()` deliveries to the timer queue, recurring schedules
whose firings go to the trigger queue. Both live in the stack's schedule group.

Scheduler retries a delivery it cannot make (the queue refuses it, say) per the target's
RetryPolicy, then drops it, unless the target names a dead-letter queue: every schedule
here names the stack's (OSTINATO_SCHEDULER_DLQ_ARN, template.yaml SchedulerDLQ, alarmed).
A timer is worth a day of retries (Scheduler's longest); a recurring firing an hour, after
which it is stale and the next one is on its way.

A timer's input passes the payload pipeline with a low threshold (`INPUT_THRESHOLD`): a
larger body is kept in the payload bucket and the schedule carries the reference, and the
app's codec (compression, encryption) applies. A recurring schedule's input does not: it
names the schedule and holds Scheduler's `<aws.scheduler.scheduled-time>` placeholder, which
Scheduler fills in only where it can read it (the arguments stay in the schedule's item).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from .._engine.payloads import PLAIN, Payloads
from .settings import Settings

#: How long Scheduler keeps trying to deliver, per kind of schedule (see the module docstring).
TIMER_RETRY = {"MaximumEventAgeInSeconds": 86_400, "MaximumRetryAttempts": 185}
FIRING_RETRY = {"MaximumEventAgeInSeconds": 3_600, "MaximumRetryAttempts": 185}
#: Schedule inputs larger than this go to the payload bucket (a schedule is a small
#: definition; its input is not meant to hold payloads).
INPUT_THRESHOLD = 8 * 1024


class EventBridgeScheduler:
    """The `Scheduler` port on EventBridge Scheduler (boto3 client built on first use)."""

    def __init__(self, settings: Settings, client: Any = None,
                 payloads: Payloads = PLAIN) -> None:
        self.settings = settings
        self._client = client
        self.payloads = payloads

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("scheduler", region_name=self.settings.region)
        return self._client

    def _target(self, arn: str, body: str, retry: dict[str, int]) -> dict[str, Any]:
        target: dict[str, Any] = {"Arn": arn, "RoleArn": self.settings.scheduler_role_arn,
                                  "Input": body, "RetryPolicy": dict(retry)}
        if self.settings.scheduler_dlq_arn:
            target["DeadLetterConfig"] = {"Arn": self.settings.scheduler_dlq_arn}
        return target

    def create_at(self, name: str, at: float, body: str) -> None:
        when = datetime.fromtimestamp(math.ceil(at), UTC).strftime("%Y-%m-%dT%H:%M:%S")
        try:
            self.client.create_schedule(
                Name=name, GroupName=self.settings.schedule_group,
                ScheduleExpression=f"at({when})", ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"}, ActionAfterCompletion="DELETE",
                Target=self._target(self.settings.timer_queue_arn, self.payloads.seal(
                    body, "schedule input", threshold=INPUT_THRESHOLD), TIMER_RETRY))
        except self.client.exceptions.ConflictException:
            pass  # created by an earlier attempt of this same delivery

    def delete_at(self, name: str) -> None:
        try:
            self.client.delete_schedule(Name=name, GroupName=self.settings.schedule_group)
        except self.client.exceptions.ResourceNotFoundException:
            pass

    def put_recurring(self, name: str, expression: str, timezone: str, start: float | None,
                      body: str, description: str) -> None:
        """Create the schedule, or overwrite one a half-finished delete left behind. `body`
        goes as it is (see the module docstring): it must hold no payload.

        Raises `ValueError` with Scheduler's reason when it refuses the expression.
        """
        arn = self.settings.trigger_queue_arn
        if not arn:
            raise RuntimeError("OSTINATO_TRIGGER_QUEUE_ARN is not set: schedules need the "
                               "trigger queue of template.yaml (TriggerQueue)")
        request: dict[str, Any] = {
            "Name": name, "GroupName": self.settings.schedule_group,
            "ScheduleExpression": expression, "ScheduleExpressionTimezone": timezone,
            "FlexibleTimeWindow": {"Mode": "OFF"}, "State": "ENABLED",
            "Description": description[:512],
            "Target": self._target(arn, body, FIRING_RETRY)}
        if start is not None:
            request["StartDate"] = datetime.fromtimestamp(start, UTC)
        client = self.client
        try:
            client.create_schedule(**request)
        except client.exceptions.ConflictException:
            client.update_schedule(**request)
        except client.exceptions.ValidationException as exc:
            raise ValueError(f"EventBridge Scheduler refused the schedule: {exc}") from None

    def delete_recurring(self, name: str) -> bool:
        try:
            self.client.delete_schedule(Name=name, GroupName=self.settings.schedule_group)
        except self.client.exceptions.ResourceNotFoundException:
            return False
        return True
