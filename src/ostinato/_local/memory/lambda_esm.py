"""SQS event-source mappings over the in-memory queues: the `functions/` handlers invoked
with Lambda-shaped SQS events, as Lambda's pollers invoke them.

One `MemoryPoller` per mapping of the template: receive up to the mapping's batch size,
invoke the handler with `{"Records": [...]}` (messageId, receiptHandle, body, the system
attributes as strings: ApproximateReceiveCount, SentTimestamp, MessageGroupId on FIFO...;
eventSourceARN, awsRegion), delete what it did not report in `batchItemFailures`. A handler
that raises, or that Lambda stops (its timeout, a crash: `InvocationKilled`), fails the whole
batch: nothing is deleted, and every message comes back after its visibility timeout (on the
environment's clock), towards the queue's redrive limit.

What Lambda leaves open (how many messages a batch holds, up to the batch size; whether an
invocation is throttled, its batch then coming back after the visibility timeout; the Lambda
context, whose remaining time the handlers' time guard reads) is left to `choices`, an
`InvocationChoices` (the simulation's seeded scheduler). Without one: full batches, no
throttling, a context counting down the function's timeout on the wall clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Protocol

from ..emulator import invoke_batch
from ..template import QueueMapping
from .sqs import Message, Queue

REGION = "us-east-1"


class InvocationChoices(Protocol):
    """What Lambda's SQS poller leaves open, decided by a simulation (module docstring)."""

    def batch_size(self, mapping: QueueMapping) -> int:
        """How many messages (1 to the mapping's batch size) the next receive asks for."""
        ...

    def throttled(self, mapping: QueueMapping) -> bool:
        """Lambda refuses this invocation (concurrency): the received batch is not handled
        and comes back after its visibility timeout, its receive counts raised."""
        ...

    def begin(self, mapping: QueueMapping, records: int) -> Any:
        """The Lambda context of an invocation about to handle `records` records."""
        ...

    def end(self, context: Any) -> None:
        """The invocation given `context` is over (returned, raised or was killed)."""
        ...


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
        #: what Lambda leaves open, when a simulation decides it (module docstring)
        self.choices: InvocationChoices | None = None

    def poll(self) -> int:
        """Receive one batch and run the handler on it; return how many messages it held."""
        choices = self.choices
        limit = self.mapping.batch_size if choices is None else choices.batch_size(self.mapping)
        with self.queue.sqs.lock:
            messages = self.queue.receive(limit)
            event = {"Records": [lambda_record(m, self.queue) for m in messages]}
        if not messages:
            return 0
        if choices is not None and choices.throttled(self.mapping):
            return len(messages)  # they come back after their visibility timeout
        self.invocations += 1
        context = None if choices is None else choices.begin(self.mapping, len(messages))
        try:
            failed = invoke_batch(self.mapping, self.handler, event, self.on_error, context)
        finally:
            if choices is not None:
                choices.end(context)
        if failed is None:  # the whole batch comes back after its visibility timeout
            return len(messages)
        with self.queue.sqs.lock:
            for record in event["Records"]:
                if record["messageId"] not in failed:
                    self.queue.delete(record["receiptHandle"])
        return len(messages)
