"""Drive the `functions/` handlers the way Lambda does, on an emulated AWS.

- `QueuePoller`: an SQS event-source mapping: receive a batch, invoke the handler with a
  Lambda-shaped SQS event, delete what succeeded, leave `batchItemFailures` (and everything,
  if the handler raised) to reappear after the visibility timeout, redrive to the DLQ.
- `SchedulerEmulator`: EventBridge Scheduler one-time `at()` schedules (moto stores them and
  never fires them): fire due ones into their SQS targets, delete them after completion.

Shared by `ostinato.testing` (virtual clock) and `ostinato dev` (real clock).
"""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ._faults import exempt, handler_scope
from ._template import QueueMapping


@dataclass
class LambdaContext:
    """The parts of Lambda's context object handlers and Powertools read."""

    function_name: str
    aws_request_id: str = ""
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def import_handler(spec: str, code_root: Path) -> Callable[..., Any]:
    """Import `package.module.function` the way Lambda does: with the code root on sys.path."""
    module_name, _, attr = spec.rpartition(".")
    root = str(code_root.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)  # Lambda puts the function's code root on the path too
    return getattr(importlib.import_module(module_name), attr)


def sqs_record(msg: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    attributes = {k: str(v) for k, v in msg.get("Attributes", {}).items()}
    return {"messageId": msg["MessageId"], "receiptHandle": msg["ReceiptHandle"],
            "body": msg["Body"], "attributes": attributes, "messageAttributes": {},
            "md5OfBody": msg.get("MD5OfBody", ""), "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn, "awsRegion": region}


class QueuePoller:
    """One SQS event-source mapping (see the module docstring)."""

    def __init__(self, mapping: QueueMapping, handler: Callable[..., Any], sqs: Any,
                 region: str = "us-east-1",
                 on_error: Callable[[QueueMapping, BaseException], None] | None = None) -> None:
        self.mapping = mapping
        self.handler = handler
        self.sqs = sqs
        self.region = region
        self.on_error = on_error
        name = mapping.queue_url.rsplit("/", 1)[-1]
        self.queue_arn = f"arn:aws:sqs:{region}:123456789012:{name}"
        self.invocations = 0

    def poll(self) -> int:
        """Receive one batch and run the handler on it; return how many messages it held."""
        try:
            received = self.sqs.receive_message(
                QueueUrl=self.mapping.queue_url, MaxNumberOfMessages=self.mapping.batch_size,
                MessageSystemAttributeNames=["All"], WaitTimeSeconds=0)
        except (BotoCoreError, ClientError):
            return 0  # the poller tries again; nothing was taken
        messages = received.get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [sqs_record(m, self.queue_arn, self.region) for m in messages]}
        context = LambdaContext(self.mapping.function, aws_request_id=str(uuid.uuid4()))
        self.invocations += 1
        try:
            with handler_scope():
                response = self.handler(event, context) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception as exc:  # the whole batch fails, as on Lambda
            if self.on_error is not None:
                self.on_error(self.mapping, exc)
            return len(messages)
        done = [m for m in messages if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            chunk = done[i:i + 10]
            try:
                self.sqs.delete_message_batch(QueueUrl=self.mapping.queue_url, Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                    for n, m in enumerate(chunk)])
            except (BotoCoreError, ClientError):
                pass  # not deleted: SQS delivers them again (at-least-once), as on AWS
        return len(messages)


_AT = "at("


def parse_at(expression: str) -> float | None:
    if not expression.startswith(_AT):
        return None
    stamp = expression[len(_AT):-1]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


class SchedulerEmulator:
    """Fires due one-time schedules into their SQS targets (see the module docstring)."""

    def __init__(self, scheduler: Any, sqs: Any, groups: list[str],
                 queue_urls_by_arn: dict[str, str]) -> None:
        self.scheduler = scheduler
        self.sqs = sqs
        self.groups = groups
        self.queue_urls_by_arn = queue_urls_by_arn
        self.fired = 0

    def _schedules(self) -> list[dict[str, Any]]:
        with exempt():
            return self._list()

    def _list(self) -> list[dict[str, Any]]:
        found = []
        for group in self.groups:
            pages = self.scheduler.get_paginator("list_schedules").paginate(GroupName=group)
            for page in pages:
                for summary in page["Schedules"]:
                    found.append(self.scheduler.get_schedule(Name=summary["Name"],
                                                             GroupName=group))
        return found

    def next_due(self) -> float | None:
        times = [parse_at(s["ScheduleExpression"]) for s in self._schedules()]
        due = [t for t in times if t is not None]
        return min(due) if due else None

    def fire_due(self, now: float) -> int:
        fired = 0
        for schedule in self._schedules():
            due = parse_at(schedule["ScheduleExpression"])
            if due is None or due > now:
                continue
            target = schedule["Target"]
            url = self.queue_urls_by_arn[target["Arn"]]
            with exempt():
                self.sqs.send_message(QueueUrl=url, MessageBody=target.get("Input", "{}"))
                if schedule.get("ActionAfterCompletion", "NONE") == "DELETE":
                    self.scheduler.delete_schedule(Name=schedule["Name"],
                                                   GroupName=schedule["GroupName"])
            fired += 1
        self.fired += fired
        return fired


def summarize(event: dict[str, Any]) -> str:
    return json.dumps(event)[:200]
