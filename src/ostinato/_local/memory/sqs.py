"""SQS in memory, on a settable clock: standard and FIFO queues as the stack uses them.

- visibility: a received message is hidden for the queue's VisibilityTimeout (or what
  ChangeMessageVisibility sets) and comes back when that passes, its receive count raised;
- redrive: a message already received `maxReceiveCount` times moves to the dead-letter queue
  on the next receive, instead of being delivered (SQS's rule, and moto's);
- FIFO: messages in send order; a message group with a message in flight delivers nothing
  more until that one is deleted or visible again (so one batch per group is in flight),
  a batch may carry several messages of one group, in order; a deduplication id (or the
  body's SHA-256 with ContentBasedDeduplication) sent again within 5 minutes is accepted and
  dropped, per queue or per message group (`DeduplicationScope`);
- DelaySeconds per message (standard queues; FIFO refuses it) or per queue, at most 900;
  at most 10 messages per receive or batch call, and 1 MiB per message.

What SQS leaves open (which receivable messages a standard queue hands out, and in what
order; the order of message groups in a FIFO batch; a standard message delivered again after
it was deleted; a message arriving later than it could) is left to `MemorySqs.choices`, a
`DeliveryChoices` (the simulation's seeded scheduler). Without one, a queue delivers in send
order, deletes what it is told to and adds no delay: deterministic, and what tests want. FIFO
semantics hold whatever the choices: per-group order, one batch in flight per group, no
duplicates of a deleted message.

`MemorySqs` holds the queues and is driven natively by the memory event-source mappings;
`MemorySqs.client()` answers the subset of the boto3 SQS client the adapters and the tests
call (`SqsTransport` runs on it unchanged), with botocore's `ClientError` for a refusal.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from ..template import ACCOUNT

#: How long a FIFO deduplication id is remembered.
DEDUP_WINDOW = 300.0
#: The longest DelaySeconds (and `deliver_at` via SQS).
MAX_DELAY = 900
#: The largest message body SQS accepts.
MAX_MESSAGE_BYTES = 1_048_576
#: Most messages per receive, send batch or delete batch.
MAX_BATCH = 10
REGION = "us-east-1"


def error(code: str, message: str, operation: str = "SQS") -> ClientError:
    """A refusal, as botocore raises it."""
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


class DeliveryChoices(Protocol):
    """The choices SQS semantics leave open, made by a simulation (module docstring)."""

    def pick(self, queue: Queue, receivable: list[Message], limit: int) -> list[Message]:
        """At most `limit` of a standard queue's `receivable` messages (in send order), in
        the order to deliver them."""
        ...

    def group_order(self, queue: Queue, groups: list[str | None]) -> list[str | None]:
        """The order a FIFO batch takes the message groups that have messages to give."""
        ...

    def redelivery(self, queue: Queue, message: Message) -> float | None:
        """Seconds until a deleted standard-queue message is delivered again (at-least-once),
        or None: the delete holds."""
        ...

    def arrival(self, queue: Queue, due: float) -> float:
        """When a standard-queue message due at `due` (its delay passed) becomes receivable:
        then or later (a poller's lag, a batching window)."""
        ...


@dataclass
class Message:
    """One message and what SQS knows of it."""

    message_id: str
    body: str
    sent: float
    visible_at: float
    sequence: int
    group: str | None = None
    dedup_id: str | None = None
    receives: int = 0
    first_receive: float | None = None
    receipt: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def system_attributes(self) -> dict[str, str]:
        attrs = {"SenderId": ACCOUNT, "SentTimestamp": str(int(self.sent * 1000)),
                 "ApproximateReceiveCount": str(self.receives),
                 "ApproximateFirstReceiveTimestamp": str(int((self.first_receive or 0) * 1000))}
        if self.group is not None:
            attrs.update(MessageGroupId=self.group, SequenceNumber=str(self.sequence))
            if self.dedup_id is not None:
                attrs["MessageDeduplicationId"] = self.dedup_id
        return attrs


class Queue:
    """One queue (see the module docstring)."""

    def __init__(self, sqs: MemorySqs, name: str, attributes: dict[str, str]) -> None:
        self.sqs = sqs
        self.name = name
        self.arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        self.url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        self.fifo = str(attributes.get("FifoQueue", "false")).lower() == "true"
        if self.fifo != name.endswith(".fifo"):
            raise error("InvalidParameterValue", "a FIFO queue's name ends in .fifo")
        self.visibility_timeout = float(attributes.get("VisibilityTimeout", 30))
        self.delay = int(attributes.get("DelaySeconds", 0))
        self.content_dedup = str(attributes.get("ContentBasedDeduplication",
                                                "false")).lower() == "true"
        self.dedup_per_group = attributes.get("DeduplicationScope") == "messageGroup"
        self.attributes = dict(attributes)
        redrive = attributes.get("RedrivePolicy")
        policy = json.loads(redrive) if isinstance(redrive, str) else redrive
        self.dlq_arn: str | None = policy["deadLetterTargetArn"] if policy else None
        self.max_receives = int(policy["maxReceiveCount"]) if policy else None
        self.messages: dict[str, Message] = {}  # by message id, in send order
        self.receipts: dict[str, str] = {}  # receipt handle -> message id
        self.dedup: dict[tuple[str | None, str], tuple[float, str]] = {}

    # -- sending --------------------------------------------------------------------------
    def send(self, body: str, delay: int | None = None, group: str | None = None,
             dedup_id: str | None = None) -> str:
        if not isinstance(body, str) or not body:
            raise error("MissingParameter", "the message body is empty")
        if len(body.encode()) > MAX_MESSAGE_BYTES:
            raise error("InvalidParameterValue",
                        f"message must be shorter than {MAX_MESSAGE_BYTES} bytes")
        if delay is not None and not 0 <= int(delay) <= MAX_DELAY:
            raise error("InvalidParameterValue", f"DelaySeconds must be 0 to {MAX_DELAY}")
        now = self.sqs.clock()
        if self.fifo:
            if group is None:
                raise error("MissingParameter", "MessageGroupId is required for FIFO queues")
            if delay:
                raise error("InvalidParameterValue", "FIFO queues take no per-message delay")
            if dedup_id is None:
                if not self.content_dedup:
                    raise error("InvalidParameterValue", "the queue needs a "
                                "MessageDeduplicationId (ContentBasedDeduplication is off)")
                dedup_id = hashlib.sha256(body.encode()).hexdigest()
            key = (group if self.dedup_per_group else None, dedup_id)
            seen = self.dedup.get(key)
            if seen is not None and now - seen[0] < DEDUP_WINDOW:
                return seen[1]  # accepted, not delivered again
        elif group is not None or dedup_id is not None:
            raise error("InvalidParameterValue", "MessageGroupId and MessageDeduplicationId "
                        "are for FIFO queues")
        due: float = now + (self.delay if delay is None else int(delay))
        if self.sqs.choices is not None and not self.fifo:
            due = max(due, self.sqs.choices.arrival(self, due))
        message = Message(str(uuid.uuid4()), body, now, due, next(self.sqs.sequence),
                          group, dedup_id)
        self.messages[message.message_id] = message
        if self.fifo:
            self.dedup[key] = (now, message.message_id)
        self.sqs.changed()
        return message.message_id

    # -- receiving ------------------------------------------------------------------------
    def receive(self, limit: int = MAX_BATCH, visibility: float | None = None,
                ) -> list[Message]:
        """Up to `limit` receivable messages, hidden for `visibility` (the queue's default)."""
        now = self.sqs.clock()
        hide = self.visibility_timeout if visibility is None else visibility
        if self.sqs.choices is not None:
            return self._receive_chosen(self.sqs.choices, limit, hide, now)
        busy: set[str | None] = set()  # FIFO groups with a message in flight, or skipped
        if self.fifo:
            busy = {m.group for m in self.messages.values()
                    if m.receipt is not None and m.visible_at > now}
        out: list[Message] = []
        for message in list(self.messages.values()):
            if len(out) == limit:
                break
            if message.group in busy:
                continue
            if message.visible_at > now:
                if self.fifo:  # FIFO: nothing of a group passes its first hidden message
                    busy.add(message.group)
                continue
            if self.max_receives is not None and message.receives >= self.max_receives:
                self._dead_letter(message)
                continue
            self._hand_out(message, now, hide)
            out.append(message)
        if out:
            self.sqs.changed()
        return out

    def _receive_chosen(self, choices: DeliveryChoices, limit: int, hide: float, now: float,
                        ) -> list[Message]:
        """`receive` with `choices` picking among what SQS semantics allow."""
        busy: set[str | None] = set()
        if self.fifo:
            busy = {m.group for m in self.messages.values()
                    if m.receipt is not None and m.visible_at > now}
        receivable: list[Message] = []
        for message in list(self.messages.values()):
            if message.group in busy:
                continue
            if message.visible_at > now:
                if self.fifo:
                    busy.add(message.group)
                continue
            if self.max_receives is not None and message.receives >= self.max_receives:
                self._dead_letter(message)
                continue
            receivable.append(message)
        if not self.fifo:
            out = choices.pick(self, receivable, limit)[:limit]
        else:  # groups in the chosen order, each group's messages in send order
            groups = list(dict.fromkeys(m.group for m in receivable))
            rank = {g: i for i, g in enumerate(choices.group_order(self, groups))}
            out = sorted(receivable, key=lambda m: (rank[m.group], m.sequence))[:limit]
        for message in out:
            self._hand_out(message, now, hide)
        if out:
            self.sqs.changed()
        return out

    def _hand_out(self, message: Message, now: float, hide: float) -> None:
        message.receives += 1
        message.first_receive = message.first_receive or now
        message.visible_at = now + hide
        message.receipt = f"{message.message_id}#{message.receives}#{uuid.uuid4().hex[:8]}"
        self.receipts[message.receipt] = message.message_id

    def _dead_letter(self, message: Message) -> None:
        del self.messages[message.message_id]
        dlq = self.sqs.by_arn(self.dlq_arn or "")
        message.visible_at, message.receipt = self.sqs.clock(), None
        dlq.messages[message.message_id] = message

    def _in_flight(self, receipt: str) -> Message:
        message_id = self.receipts.get(receipt)
        message = None if message_id is None else self.messages.get(message_id)
        if message is None or message.receipt != receipt:
            raise error("ReceiptHandleIsInvalid", f"the receipt handle {receipt!r} is not "
                        "the message's current one")
        return message

    def delete(self, receipt: str) -> None:
        """Delete the message received with `receipt` (gone already: nothing to do)."""
        message_id = self.receipts.pop(receipt, None)
        if message_id is None:
            if "#" not in receipt:
                raise error("ReceiptHandleIsInvalid", f"not a receipt handle: {receipt!r}")
            return
        message = self.messages.get(message_id)
        if message is not None and message.receipt == receipt:
            again = (None if self.fifo or self.sqs.choices is None
                     else self.sqs.choices.redelivery(self, message))
            if again is None:
                del self.messages[message_id]
            else:  # at-least-once: this one is delivered again, processed or not
                message.visible_at, message.receipt = self.sqs.clock() + again, None
            self.sqs.changed()

    def change_visibility(self, receipt: str, timeout: float) -> None:
        message = self._in_flight(receipt)
        now = self.sqs.clock()
        if message.visible_at <= now:
            raise error("MessageNotInflight", "the message is not in flight")
        if not 0 <= timeout <= 43_200:
            raise error("InvalidParameterValue", "VisibilityTimeout must be 0 to 43200")
        message.visible_at = now + timeout
        self.sqs.changed()

    # -- looking --------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        now = self.sqs.clock()
        visible = delayed = hidden = 0
        for m in self.messages.values():
            if m.visible_at <= now:
                visible += 1
            elif m.receipt is None:
                delayed += 1
            else:
                hidden += 1
        return {"ApproximateNumberOfMessages": visible,
                "ApproximateNumberOfMessagesNotVisible": hidden,
                "ApproximateNumberOfMessagesDelayed": delayed}

    def next_due(self, now: float) -> float | None:
        """The earliest future time a hidden or delayed message becomes receivable."""
        times = [m.visible_at for m in self.messages.values() if m.visible_at > now]
        return min(times) if times else None


class MemorySqs:
    """Every queue of one environment, on `clock` (see the module docstring). One lock
    makes each call atomic."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.queues: dict[str, Queue] = {}  # by name
        self.sequence = itertools.count(1)
        self.version = 0  # bumped by every change (pollers skip queues that cannot deliver)
        #: what SQS leaves open, when a simulation decides it (module docstring)
        self.choices: DeliveryChoices | None = None

    def changed(self) -> None:
        self.version += 1

    def create_queue(self, name: str, attributes: dict[str, str] | None = None) -> Queue:
        with self.lock:
            if name not in self.queues:
                self.queues[name] = Queue(self, name, attributes or {})
            return self.queues[name]

    def by_url(self, url: str) -> Queue:
        queue = self.queues.get(url.rsplit("/", 1)[-1])
        if queue is None:
            raise error("AWS.SimpleQueueService.NonExistentQueue", f"no queue {url}")
        return queue

    def by_arn(self, arn: str) -> Queue:
        queue = self.queues.get(arn.rsplit(":", 1)[-1])
        if queue is None:
            raise error("AWS.SimpleQueueService.NonExistentQueue", f"no queue {arn}")
        return queue

    def next_due(self, now: float) -> float | None:
        with self.lock:
            times = [t for t in (q.next_due(now) for q in self.queues.values()) if t is not None]
        return min(times) if times else None

    def client(self) -> SqsClient:
        return SqsClient(self)


def _receipts_batch(entries: list[dict[str, Any]], action: Callable[[dict[str, Any]], None],
                    ) -> dict[str, Any]:
    if not 1 <= len(entries) <= MAX_BATCH:
        raise error("AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                    f"1 to {MAX_BATCH} entries per batch")
    done, failed = [], []
    for entry in entries:
        try:
            action(entry)
            done.append({"Id": entry["Id"]})
        except ClientError as exc:
            failed.append({"Id": entry["Id"], "SenderFault": True,
                           "Code": exc.response["Error"]["Code"],
                           "Message": exc.response["Error"]["Message"]})
    answer: dict[str, Any] = {"Successful": done}
    if failed:
        answer["Failed"] = failed
    return answer


class SqsClient:
    """The boto3 SQS client calls the adapters and tests make, answered from `MemorySqs`."""

    def __init__(self, sqs: MemorySqs) -> None:
        self._sqs = sqs

    def create_queue(self, QueueName: str, Attributes: dict[str, str] | None = None,
                     **_: Any) -> dict[str, Any]:
        return {"QueueUrl": self._sqs.create_queue(QueueName, Attributes).url}

    def get_queue_url(self, QueueName: str, **_: Any) -> dict[str, Any]:
        with self._sqs.lock:
            queue = self._sqs.queues.get(QueueName)
            if queue is None:
                raise error("AWS.SimpleQueueService.NonExistentQueue", f"no queue {QueueName}")
            return {"QueueUrl": queue.url}

    def send_message(self, QueueUrl: str, MessageBody: str, DelaySeconds: int | None = None,
                     MessageGroupId: str | None = None,
                     MessageDeduplicationId: str | None = None, **_: Any) -> dict[str, Any]:
        with self._sqs.lock:
            queue = self._sqs.by_url(QueueUrl)
            message_id = queue.send(MessageBody, DelaySeconds, MessageGroupId,
                                    MessageDeduplicationId)
        return {"MessageId": message_id,
                "MD5OfMessageBody": hashlib.md5(MessageBody.encode()).hexdigest()}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]],
                           **_: Any) -> dict[str, Any]:
        with self._sqs.lock:
            queue = self._sqs.by_url(QueueUrl)
            ids: dict[str, str] = {}

            def send(entry: dict[str, Any]) -> None:
                ids[entry["Id"]] = queue.send(
                    entry["MessageBody"], entry.get("DelaySeconds"),
                    entry.get("MessageGroupId"), entry.get("MessageDeduplicationId"))

            answer = _receipts_batch(Entries, send)
        for ok in answer["Successful"]:
            ok["MessageId"] = ids[ok["Id"]]
        return answer

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int = 1,
                        VisibilityTimeout: int | None = None, **_: Any) -> dict[str, Any]:
        if not 1 <= MaxNumberOfMessages <= MAX_BATCH:
            raise error("InvalidParameterValue", f"MaxNumberOfMessages must be 1 to {MAX_BATCH}")
        with self._sqs.lock:
            messages = self._sqs.by_url(QueueUrl).receive(MaxNumberOfMessages, VisibilityTimeout)
            shaped = [{"MessageId": m.message_id, "ReceiptHandle": m.receipt, "Body": m.body,
                       "MD5OfBody": hashlib.md5(m.body.encode()).hexdigest(),
                       "Attributes": m.system_attributes()} for m in messages]
        return {"Messages": shaped} if shaped else {}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str, **_: Any) -> dict[str, Any]:
        with self._sqs.lock:
            self._sqs.by_url(QueueUrl).delete(ReceiptHandle)
        return {}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]],
                             **_: Any) -> dict[str, Any]:
        with self._sqs.lock:
            queue = self._sqs.by_url(QueueUrl)
            return _receipts_batch(Entries, lambda e: queue.delete(e["ReceiptHandle"]))

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str,
                                  VisibilityTimeout: int, **_: Any) -> dict[str, Any]:
        with self._sqs.lock:
            self._sqs.by_url(QueueUrl).change_visibility(ReceiptHandle, VisibilityTimeout)
        return {}

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict[str, Any]],
                                        **_: Any) -> dict[str, Any]:
        with self._sqs.lock:
            queue = self._sqs.by_url(QueueUrl)
            return _receipts_batch(Entries, lambda e: queue.change_visibility(
                e["ReceiptHandle"], e["VisibilityTimeout"]))

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str] | None = None,
                             **_: Any) -> dict[str, Any]:
        with self._sqs.lock:
            queue = self._sqs.by_url(QueueUrl)
            values: dict[str, Any] = {**queue.attributes, **queue.counts(),
                                      "QueueArn": queue.arn}
        names = AttributeNames or ["All"]
        picked = values if "All" in names else {k: v for k, v in values.items() if k in names}
        return {"Attributes": {k: str(v) for k, v in picked.items()}}

    def purge_queue(self, QueueUrl: str, **_: Any) -> dict[str, Any]:
        with self._sqs.lock:
            queue = self._sqs.by_url(QueueUrl)
            queue.messages.clear()
            queue.receipts.clear()
        return {}
