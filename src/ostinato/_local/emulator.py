"""Drive the `functions/` handlers the way Lambda does, on an emulated AWS.

- `QueuePoller`: an SQS event-source mapping: receive a batch, invoke the handler with a
  Lambda-shaped SQS event, delete what succeeded, leave `batchItemFailures` (and everything,
  if the handler raised) to reappear after the visibility timeout, redrive to the DLQ.
- `SchedulerEmulator`: EventBridge Scheduler (moto stores schedules and never fires them):
  one-time `at()` schedules fire once into their SQS targets and are deleted after
  completion; recurring `cron()` / `rate()` ones fire at each occurrence, with the target
  input's context attributes filled in.

Both retry their own calls that fail transiently (`retrying`), as Lambda's pollers and
Scheduler do, so a dropped connection reaches only the engine: a failed receive or delete is
tried again, a handler that raised leaves its messages to reappear after the visibility
timeout, and a delivery Scheduler could not make is made at a later round.

Shared by `ostinato.testing` (virtual clock) and `ostinato dev` (real clock).
"""

from __future__ import annotations

import importlib
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .faults import InvocationKilled, exempt, handler_scope
from .retrying import retrying, transient
from .template import ACCOUNT, QueueMapping


@dataclass
class LambdaContext:
    """The parts of Lambda's context object handlers and Powertools read; the remaining
    time counts down (wall clock) from the function's `timeout` since the context was made."""

    function_name: str
    aws_request_id: str = ""
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""
    timeout: float = 300.0
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return int(max(0.0, self.timeout - (time.monotonic() - self.started)) * 1000)


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


def invoke_batch(mapping: QueueMapping, handler: Callable[..., Any], event: dict[str, Any],
                 on_error: Callable[[QueueMapping, BaseException], None] | None,
                 context: Any = None) -> set[str] | None:
    """Invoke `handler` with one SQS event as Lambda does; the message ids it reported in
    `batchItemFailures`, or None when it raised or was killed (`InvocationKilled`: its
    timeout, a crash): the whole batch fails, as on Lambda. `context`: the Lambda context
    to pass (default: a `LambdaContext` counting down the function's timeout)."""
    if context is None:
        context = LambdaContext(mapping.function, aws_request_id=str(uuid.uuid4()),
                                timeout=mapping.timeout)
    try:
        with handler_scope():
            response = handler(event, context) or {}
    except InvocationKilled:
        return None
    except Exception as exc:
        if on_error is not None:
            on_error(mapping, exc)
        return None
    return {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}


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
        self.queue_arn = f"arn:aws:sqs:{region}:{ACCOUNT}:{name}"
        self.invocations = 0

    def poll(self) -> int:
        """Receive one batch and run the handler on it; return how many messages it held."""
        try:
            received = retrying(
                self.sqs.receive_message,
                QueueUrl=self.mapping.queue_url, MaxNumberOfMessages=self.mapping.batch_size,
                MessageSystemAttributeNames=["All"], WaitTimeSeconds=0)
        except (BotoCoreError, ClientError):
            # Lambda's poller retries; count the attempt as activity so a caller draining
            # the queues polls again instead of concluding they are empty.
            return 1
        messages = received.get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [sqs_record(m, self.queue_arn, self.region) for m in messages]}
        self.invocations += 1
        failed = invoke_batch(self.mapping, self.handler, event, self.on_error)
        if failed is None:
            return len(messages)
        done = [m for m in messages if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            chunk = done[i:i + 10]
            try:  # a delete repeated after a dropped reply deletes nothing twice
                retrying(self.sqs.delete_message_batch, QueueUrl=self.mapping.queue_url,
                         Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                                  for n, m in enumerate(chunk)])
            except (BotoCoreError, ClientError):
                pass  # not deleted: SQS delivers them again (at-least-once), as on AWS
        return len(messages)


_AT = "at("
#: Most firings of one recurring schedule sent in one call; beyond, the missed ones are skipped
#: (Scheduler never catches up either: this only bounds a clock that jumped far ahead).
MAX_CATCH_UP = 100


def parse_at(expression: str) -> float | None:
    if not expression.startswith(_AT):
        return None
    stamp = expression[len(_AT):-1]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


def _epoch(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def render_input(template: str, schedule: dict[str, Any], fire_time: float) -> str:
    """The target input with Scheduler's context attributes filled in."""
    from .._core.cron import iso

    values = {"schedule-arn": schedule.get("Arn", ""), "scheduled-time": iso(fire_time),
              "execution-id": uuid.uuid4().hex[:16], "attempt-number": "1"}
    for key, value in values.items():
        template = template.replace(f"<aws.scheduler.{key}>", value)
    return template


@dataclass
class _Recurring:
    """What the emulation remembers of one recurring schedule."""

    version: Any  # LastModificationDate: a changed schedule starts over
    start: float  # StartDate, else when the emulation first saw the schedule
    next_at: float | None


class SchedulerEmulator:
    """Fires due schedules into their SQS targets (see the module docstring).

    One-time `at()` schedules fire once, then are deleted if their ActionAfterCompletion says
    so. Recurring `cron()` / `rate()` schedules fire at every occurrence on `clock`, in their
    time zone, between StartDate and EndDate, while ENABLED; a rate counts from its StartDate
    (else from when the emulation first saw it), and the target input gets the context
    attributes (`<aws.scheduler.scheduled-time>`, ...) filled in.
    """

    def __init__(self, scheduler: Any, sqs: Any, groups: list[str],
                 queue_urls_by_arn: dict[str, str],
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self.scheduler = scheduler
        self.sqs = sqs
        self.groups = groups
        self.queue_urls_by_arn = queue_urls_by_arn
        self.clock = clock or time.time
        self.fired = 0
        self._recurring: dict[str, _Recurring] = {}
        self._fired_once: set[str] = set()
        self._known: list[dict[str, Any]] = []

    def _schedules(self) -> list[dict[str, Any]]:
        """Every schedule; if the listing keeps failing, the last one read (Scheduler itself
        never loses sight of its schedules)."""
        with exempt():
            try:
                self._known = self._list()
            except (BotoCoreError, ClientError) as exc:
                if not transient(exc):
                    raise
        return self._known

    def _list(self) -> list[dict[str, Any]]:
        found = []
        for group in self.groups:
            token: dict[str, Any] = {}
            while True:
                page = retrying(self.scheduler.list_schedules, GroupName=group, **token)
                for summary in page["Schedules"]:
                    try:
                        found.append(retrying(self.scheduler.get_schedule,
                                              Name=summary["Name"], GroupName=group))
                    except ClientError as exc:  # deleted since it was listed
                        if not _not_found(exc):
                            raise
                if not page.get("NextToken"):
                    break
                token = {"NextToken": page["NextToken"]}
        return found

    # -- when -----------------------------------------------------------------------------
    @staticmethod
    def _next_recurring(schedule: dict[str, Any], after: float, start: float) -> float | None:
        from .._core.cron import parse_expression

        try:
            recurrence = parse_expression(schedule["ScheduleExpression"])
            due = recurrence.next_fire(after, schedule.get("ScheduleExpressionTimezone")
                                       or "UTC", start)
        except ValueError:
            return None  # an expression Scheduler would have refused: never fires
        end = _epoch(schedule.get("EndDate"))
        return None if due is None or (end is not None and due > end) else due

    def _due(self, schedule: dict[str, Any]) -> float | None:
        """When `schedule` fires next (it may be in the past: due now)."""
        expression = schedule["ScheduleExpression"]
        if expression.startswith(_AT):
            return None if schedule["Arn"] in self._fired_once else parse_at(expression)
        if schedule.get("State", "ENABLED") != "ENABLED":
            return None
        version = schedule.get("LastModificationDate")
        state = self._recurring.get(schedule["Arn"])
        if state is None or state.version != version:
            start = _epoch(schedule.get("StartDate"))
            # a rate fires at its start; a cron only at occurrences after it was created
            inclusive = start is not None or not expression.startswith("cron(")
            if start is None:
                start = float(int(self.clock()))
            first = self._next_recurring(schedule, start - 1 if inclusive else start, start)
            state = _Recurring(version, start, first)
            self._recurring[schedule["Arn"]] = state
        return state.next_at

    def next_due(self) -> float | None:
        due = [t for t in (self._due(s) for s in self._schedules()) if t is not None]
        return min(due) if due else None

    # -- firing -----------------------------------------------------------------------------
    def fire_due(self, now: float) -> int:
        fired = 0
        schedules = self._schedules()
        alive = {s["Arn"] for s in schedules}
        for arn in set(self._recurring) - alive:
            del self._recurring[arn]
        self._fired_once &= alive
        for schedule in schedules:
            due = self._due(schedule)
            if due is None or due > now:
                continue
            if schedule["ScheduleExpression"].startswith(_AT):
                fired += self._fire_once(schedule, due)
            else:
                fired += self._fire_recurring(schedule, due, now)
        self.fired += fired
        return fired

    def _send(self, schedule: dict[str, Any], fire_time: float) -> bool:
        """Deliver one firing; False if it could not be delivered now (Scheduler tries the
        firing again: here, at the next round). Delivery is at least once, as on AWS."""
        target = schedule["Target"]
        url = self.queue_urls_by_arn[target["Arn"]]
        body = render_input(target.get("Input", "{}"), schedule, fire_time)
        with exempt():
            try:
                retrying(self.sqs.send_message, QueueUrl=url, MessageBody=body)
            except (BotoCoreError, ClientError) as exc:
                if not transient(exc):
                    raise
                return False
        return True

    def _fire_once(self, schedule: dict[str, Any], due: float) -> int:
        if not self._send(schedule, due):
            return 0
        self._fired_once.add(schedule["Arn"])
        if schedule.get("ActionAfterCompletion", "NONE") == "DELETE":
            with exempt():
                try:
                    retrying(self.scheduler.delete_schedule, Name=schedule["Name"],
                             GroupName=schedule["GroupName"])
                except (BotoCoreError, ClientError) as exc:
                    # gone already (a repeated delete), or left for a later round: it has
                    # fired, and `_fired_once` keeps it from firing again
                    if not transient(exc) and not _not_found(exc):
                        raise
        return 1

    def _fire_recurring(self, schedule: dict[str, Any], due: float, now: float) -> int:
        state = self._recurring[schedule["Arn"]]
        fired = 0
        next_at: float | None = due
        while next_at is not None and next_at <= now:
            if fired == MAX_CATCH_UP:
                next_at = self._next_recurring(schedule, now, state.start)
                break
            if not self._send(schedule, next_at):
                break  # this occurrence is tried again at the next round
            fired += 1
            next_at = self._next_recurring(schedule, next_at, state.start)
        state.next_at = next_at
        return fired



def _not_found(exc: BaseException) -> bool:
    return (isinstance(exc, ClientError)
            and exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException")
