"""SQS: how messages leave the engine, and when later deliveries go through Scheduler.

- workflow tasks: the FIFO queue, MessageGroupId = workflow id, deduplication id from the
  message key (`keys.dedup_id`);
- activity tasks: one standard queue per task queue;
- delivery at a future time (`deliver_at`): SQS DelaySeconds on the timer queue up to 15
  minutes, an EventBridge Scheduler one-time `at()` schedule beyond; the timer handler
  forwards the message when it is due. Schedule names derive from the delivery key, so a
  retried send creates nothing twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from .._core import keys, wire
from .._core.serde import dumps
from .._engine.outbox import MAX_SQS_DELAY
from .._engine.ports import Scheduler
from .settings import Settings


class SqsTransport:
    """The `Transport` port on SQS (see the module docstring)."""

    def __init__(self, settings: Settings, scheduler: Scheduler, sqs: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        import boto3

        self.settings = settings
        self.sqs = sqs or boto3.client("sqs", region_name=settings.region)
        self.scheduler = scheduler
        self.clock = clock

    def send_workflow_task(self, msg: wire.Message) -> None:
        self.sqs.send_message(
            QueueUrl=self.settings.workflow_queue_url, MessageBody=dumps(msg.encode()),
            MessageGroupId=msg.workflow_id, MessageDeduplicationId=keys.dedup_id(msg.key))

    def has_task_queue(self, task_queue: str) -> bool:
        return task_queue in self.settings.activity_queue_urls

    def send_activity_task(self, task: wire.ActivityTask, delay: int = 0) -> None:
        try:
            url = self.settings.activity_queue_urls[task.task_queue]
        except KeyError:
            raise LookupError(f"no SQS queue configured for task queue "
                              f"{task.task_queue!r}") from None
        self.sqs.send_message(QueueUrl=url, MessageBody=dumps(task.encode()),
                              DelaySeconds=max(0, min(delay, MAX_SQS_DELAY)))

    def deliver_at(self, due: float, envelope: wire.Envelope, key: str) -> None:
        """Deliver `envelope` at `due` (see the module docstring)."""
        delay = due - self.clock()
        if delay <= 0:
            self.forward(envelope)
            return
        body = dumps(wire.Due(due, key, envelope).encode())
        if delay <= MAX_SQS_DELAY:
            if isinstance(envelope.msg, wire.ActivityTask):
                self.send_activity_task(envelope.msg, math.ceil(delay))
            else:
                self.sqs.send_message(QueueUrl=self.settings.timer_queue_url,
                                      MessageBody=body, DelaySeconds=math.ceil(delay))
            return
        self.scheduler.create_at(keys.timer_schedule(key), due, body)

    def cancel_at(self, key: str) -> None:
        self.scheduler.delete_at(keys.timer_schedule(key))

    def forward(self, envelope: wire.Envelope) -> None:
        """Send a due envelope to its destination."""
        if isinstance(envelope.msg, wire.ActivityTask):
            self.send_activity_task(envelope.msg)
        else:
            self.send_workflow_task(envelope.msg)

    def retry_soon(self, receipt_handle: str, seconds: int = 2) -> None:
        """Make a workflow-task message visible again in `seconds` instead of after the
        visibility timeout (needs sqs:ChangeMessageVisibility, which template.yaml grants the
        decider: SQS event sources grant only receive and delete)."""
        self.sqs.change_message_visibility(QueueUrl=self.settings.workflow_queue_url,
                                           ReceiptHandle=receipt_handle,
                                           VisibilityTimeout=seconds)
