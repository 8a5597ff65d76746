"""SQS and EventBridge Scheduler: how messages and timers leave the engine.

- workflow tasks: the FIFO queue, MessageGroupId = workflow id, deduplication id = message key;
- activity tasks: one standard queue per task queue;
- delivery at a future time (`deliver_at`): SQS DelaySeconds on the timer queue up to 15
  minutes, an EventBridge Scheduler one-time `at()` schedule beyond; the timer handler
  forwards the message when it is due. Schedule names derive from the message key, so a
  retried send creates nothing twice.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .._core.serde import dumps
from .settings import Settings

MAX_SQS_DELAY = 900


def _token(key: str, limit: int) -> str:
    """A deduplication id / schedule name: the key itself when short and plain, else a hash."""
    if len(key) <= limit and all(c.isalnum() or c in "-_.:" for c in key):
        return key.replace(":", "-") if limit == 64 else key
    return hashlib.sha256(key.encode()).hexdigest()[:limit]


def schedule_name(key: str) -> str:
    return "ost-" + hashlib.sha256(key.encode()).hexdigest()[:40]


class Transport:
    """Sends what an outbox says (see the module docstring)."""

    def __init__(self, settings: Settings, sqs: Any = None, scheduler: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        import boto3

        self.settings = settings
        self.sqs = sqs or boto3.client("sqs", region_name=settings.region)
        self._scheduler = scheduler
        self.clock = clock

    @property
    def scheduler(self) -> Any:
        if self._scheduler is None:
            import boto3

            self._scheduler = boto3.client("scheduler", region_name=self.settings.region)
        return self._scheduler

    # -- primitives ---------------------------------------------------------------------
    def send_workflow_task(self, msg: dict[str, Any]) -> None:
        self.sqs.send_message(
            QueueUrl=self.settings.workflow_queue_url, MessageBody=dumps(msg),
            MessageGroupId=msg["wid"], MessageDeduplicationId=_token(msg["mk"], 128))

    def activity_queue_url(self, task_queue: str) -> str:
        try:
            return self.settings.activity_queue_urls[task_queue]
        except KeyError:
            raise LookupError(f"no SQS queue configured for task queue {task_queue!r}") from None

    def send_activity_task(self, task_queue: str, task: dict[str, Any], delay: int = 0) -> None:
        self.sqs.send_message(QueueUrl=self.activity_queue_url(task_queue),
                              MessageBody=dumps(task), DelaySeconds=max(0, min(delay, 900)))

    def deliver_at(self, due: float, envelope: dict[str, Any], key: str) -> None:
        """Deliver `envelope` ({"to": "workflow"|"activity", "queue"?, "msg"}) at `due`."""
        delay = due - self.clock()
        if delay <= 0:
            self.forward(envelope)
            return
        body = {"due": due, "key": key, **envelope}
        if delay <= MAX_SQS_DELAY:
            if envelope["to"] == "activity":
                self.send_activity_task(envelope["queue"], envelope["msg"], math.ceil(delay))
            else:
                self.sqs.send_message(QueueUrl=self.settings.timer_queue_url,
                                      MessageBody=dumps(body), DelaySeconds=math.ceil(delay))
            return
        at = datetime.fromtimestamp(math.ceil(due), UTC).strftime("%Y-%m-%dT%H:%M:%S")
        try:
            self.scheduler.create_schedule(
                Name=schedule_name(key), GroupName=self.settings.schedule_group,
                ScheduleExpression=f"at({at})", ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"}, ActionAfterCompletion="DELETE",
                Target={"Arn": self.settings.timer_queue_arn,
                        "RoleArn": self.settings.scheduler_role_arn, "Input": dumps(body)})
        except self.scheduler.exceptions.ConflictException:
            pass  # created by an earlier attempt of this same delivery

    def cancel_at(self, key: str) -> None:
        try:
            self.scheduler.delete_schedule(Name=schedule_name(key),
                                           GroupName=self.settings.schedule_group)
        except self.scheduler.exceptions.ResourceNotFoundException:
            pass

    def forward(self, envelope: dict[str, Any]) -> None:
        """Send a due envelope to its destination."""
        if envelope["to"] == "activity":
            self.send_activity_task(envelope["queue"], envelope["msg"])
        else:
            self.send_workflow_task(envelope["msg"])

    def retry_soon(self, receipt_handle: str, seconds: int = 2) -> None:
        """Make a workflow-task message visible again shortly instead of after the timeout."""
        self.sqs.change_message_visibility(QueueUrl=self.settings.workflow_queue_url,
                                           ReceiptHandle=receipt_handle,
                                           VisibilityTimeout=seconds)

    # -- outbox -------------------------------------------------------------------------
    def dispatch(self, outbox: list[dict[str, Any]]) -> None:
        """Send every entry of an outbox; safe to repeat (at-least-once)."""
        for entry in outbox:
            match entry["op"]:
                case "workflow":
                    self.send_workflow_task(entry["msg"])
                case "activity":
                    self.send_activity_task(entry["queue"], entry["msg"])
                case "at":
                    self.deliver_at(entry["due"], entry["envelope"], entry["key"])
                case "cancel_at":
                    if entry["scheduler"]:
                        self.cancel_at(entry["key"])
                case op:
                    raise ValueError(f"unknown outbox operation {op!r}")
