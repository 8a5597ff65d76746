"""SQS: how messages leave the engine, and when later deliveries go through Scheduler.

- workflow tasks: the FIFO queue, MessageGroupId = workflow id, deduplication id from the
  message key (`keys.dedup_id`);
- activity tasks: one standard queue per task queue;
- delivery at a future time (`deliver_at`): SQS DelaySeconds on the timer queue up to 15
  minutes, an EventBridge Scheduler one-time `at()` schedule beyond; the timer handler
  forwards the message when it is due. Schedule names derive from the delivery key, so a
  retried send creates nothing twice.

Every body passes the payload pipeline (`Payloads.seal`): one over 128 KiB travels as a
reference to the payload bucket, so no message nears SQS's 1 MiB; the handlers open them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .._core import keys, wire
from .._core.serde import dumps
from .._engine.payloads import IN_FLIGHT, PLAIN, Payloads
from .._engine.ports import MAX_SQS_DELAY, Scheduler
from .settings import Settings

log = logging.getLogger("ostinato.transport")

#: A SendMessageBatch request carries at most this many bytes of bodies (SQS caps the whole
#: request at its message size limit; stay well below it).
REQUEUE_BATCH_BYTES = 256 * 1024


def _chunks(bodies: list[str]) -> list[list[int]]:
    """Indices of `bodies` in groups of at most 10 and REQUEUE_BATCH_BYTES (a body larger
    than that goes alone)."""
    chunks: list[list[int]] = []
    size = 0
    for i, body in enumerate(bodies):
        length = len(body.encode())
        if not chunks or len(chunks[-1]) == 10 or size + length > REQUEUE_BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(i)
        size += length
    return chunks


class SqsTransport:
    """The `Transport` port on SQS (see the module docstring)."""

    def __init__(self, settings: Settings, scheduler: Scheduler, sqs: Any = None,
                 clock: Callable[[], float] = time.time, payloads: Payloads = PLAIN) -> None:
        import boto3

        self.settings = settings
        self.sqs = sqs or boto3.client("sqs", region_name=settings.region)
        self.scheduler = scheduler
        self.clock = clock
        self.payloads = payloads

    def _body(self, encoded: Any, what: str) -> str:
        return self.payloads.seal(dumps(encoded), what, prefix=IN_FLIGHT)

    def send_workflow_task(self, msg: wire.Message) -> None:
        self.sqs.send_message(
            QueueUrl=self.settings.workflow_queue_url,
            MessageBody=self._body(msg.encode(), "workflow-task message"),
            MessageGroupId=msg.workflow_id, MessageDeduplicationId=keys.dedup_id(msg.key))

    def has_task_queue(self, task_queue: str) -> bool:
        return task_queue in self.settings.activity_queue_urls

    def send_activity_task(self, task: wire.ActivityTask, delay: int = 0) -> None:
        try:
            url = self.settings.activity_queue_urls[task.task_queue]
        except KeyError:
            raise LookupError(f"no SQS queue configured for task queue "
                              f"{task.task_queue!r}") from None
        self.sqs.send_message(QueueUrl=url, MessageBody=self._body(task.encode(),
                                                                   "activity task"),
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
                                      MessageBody=self.payloads.seal(body, "due message",
                                                                     prefix=IN_FLIGHT),
                                      DelaySeconds=math.ceil(delay))
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

    def requeue(self, queue_arn: str, bodies: list[str]) -> list[int]:
        """Send `bodies` again as new messages of the standard queue `queue_arn`; return the
        indices of those that could not be sent (their originals must then stay).

        For received messages an invocation never started: a new message has receive count 1,
        so it is not mistaken for one whose worker died, nor walked towards the DLQ. Sent in
        batches of at most 10 entries and `REQUEUE_BATCH_BYTES`.
        """
        url = self._queue_url(queue_arn)
        failed: list[int] = []
        for chunk in _chunks(bodies):
            try:
                answer = self.sqs.send_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "MessageBody": bodies[i]} for i in chunk])
            except (BotoCoreError, ClientError):
                failed += chunk
                continue
            failed += [int(entry["Id"]) for entry in answer.get("Failed", [])]
        return sorted(failed)

    def release(self, receipt_handles: list[str]) -> None:
        """Make received workflow-task messages visible again at once (FIFO order holds, so
        they are not re-sent). Best effort: one still hidden comes back after its visibility
        timeout, which is what would have happened anyway."""
        for start in range(0, len(receipt_handles), 10):
            entries = [{"Id": str(n), "ReceiptHandle": r, "VisibilityTimeout": 0}
                       for n, r in enumerate(receipt_handles[start:start + 10])]
            try:
                self.sqs.change_message_visibility_batch(
                    QueueUrl=self.settings.workflow_queue_url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                log.warning("could not release %d workflow-task message(s): %s",
                            len(entries), exc)

    def _queue_url(self, queue_arn: str) -> str:
        """The URL of one of the stack's queues, by its ARN (matched by queue name)."""
        name = queue_arn.rsplit(":", 1)[-1]
        settings = self.settings
        for url in (settings.workflow_queue_url, settings.timer_queue_url,
                    settings.trigger_queue_url, *settings.activity_queue_urls.values()):
            if url and url.rsplit("/", 1)[-1] == name:
                return url
        raise LookupError(f"no queue URL configured for {queue_arn}")

    def retry_soon(self, receipt_handle: str, seconds: int = 2) -> None:
        """Make a workflow-task message visible again in `seconds` instead of after the
        visibility timeout (needs sqs:ChangeMessageVisibility, which template.yaml grants the
        decider: SQS event sources grant only receive and delete)."""
        self.sqs.change_message_visibility(QueueUrl=self.settings.workflow_queue_url,
                                           ReceiptHandle=receipt_handle,
                                           VisibilityTimeout=seconds)
