"""SQS event-source mappings over the in-memory queues: the `functions/` handlers invoked
with Lambda-shaped SQS events, as Lambda's pollers invoke them.

One `MemoryPoller` per mapping of the template: receive up to the mapping's batch size,
invoke the handler with `{"Records": [...]}` (messageId, receiptHandle, body, the system
attributes as strings: ApproximateReceiveCount, SentTimestamp, MessageGroupId on FIFO...;
eventSourceARN, awsRegion), delete what it did not report in `batchItemFailures`. A handler
that raises fails the whole batch: nothing is deleted, and every message comes back after its
visibility timeout (on the environment's clock), towards the queue's redrive limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from ..emulator import invoke_batch
from ..template import QueueMapping
from .sqs import Message, Queue

REGION = "us-east-1"


def lambda_record(message: Message, queue: Queue) -> dict[str, Any]:
    """One record of a Lambda SQS event."""
    return {"messageId": message.message_id, "receiptHandle": message.receipt,
            "body": message.body, "attributes": message.system_attributes(),
            "messageAttributes": {}, "md5OfBody": hashlib.md5(message.body.encode()).hexdigest(),
            "eventSource": "aws:sqs", "eventSourceARN": queue.arn, "awsRegion": REGION}


class MemoryPoller:
    """One event-source mapping on a memory queue (see the module docstring)."""

    def __init__(self, mapping: QueueMapping, handler: Callable[..., Any], queue: Queue,
                 on_error: Callable[[QueueMapping, BaseException], None] | None = None,
                 ) -> None:
        self.mapping = mapping
        self.handler = handler
        self.queue = queue
        self.queue_arn = queue.arn
        self.on_error = on_error
        self.invocations = 0

    def poll(self) -> int:
        """Receive one batch and run the handler on it; return how many messages it held."""
        with self.queue.sqs.lock:
            messages = self.queue.receive(self.mapping.batch_size)
            event = {"Records": [lambda_record(m, self.queue) for m in messages]}
        if not messages:
            return 0
        self.invocations += 1
        failed = invoke_batch(self.mapping, self.handler, event, self.on_error)
        if failed is None:  # the whole batch comes back after its visibility timeout
            return len(messages)
        with self.queue.sqs.lock:
            for record in event["Records"]:
                if record["messageId"] not in failed:
                    self.queue.delete(record["receiptHandle"])
        return len(messages)
