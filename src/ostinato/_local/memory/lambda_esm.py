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
import uuid
from collections.abc import Callable
from typing import Any

from ..emulator import LambdaContext
from ..faults import handler_scope
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
        context = LambdaContext(self.mapping.function, aws_request_id=str(uuid.uuid4()),
                                timeout=self.mapping.timeout)
        self.invocations += 1
        try:
            with handler_scope():
                response = self.handler(event, context) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception as exc:  # the whole batch fails, as on Lambda
            if self.on_error is not None:
                self.on_error(self.mapping, exc)
            return len(messages)
        with self.queue.sqs.lock:
            for record in event["Records"]:
                if record["messageId"] not in failed:
                    self.queue.delete(record["receiptHandle"])
        return len(messages)
