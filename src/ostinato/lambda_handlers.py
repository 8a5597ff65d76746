"""The Lambda entry points; `functions/*/app.py` re-export these.

Each parses its trigger with Powertools, calls the engine once, and shapes the response.
SQS triggers report partial batch failures, so one bad message never re-runs its batch-mates.
Each invocation builds its own batch processor: a Powertools processor keeps the batch's
records and failures on itself, so one shared by `ostinato dev`'s poller threads would hand
one queue's failures to another's invocation.

Every SQS handler guards its invocation's time (`_aws/budget.py`): before it starts a record
(the decider: a workflow group) it checks what the Lambda context has left, and stops at the
first record that might not finish. What it did not start goes back untouched, so that it is
not counted as an attempt:

- standard queues (activities, timers, triggers): the untouched bodies are sent again as new
  messages and the originals reported done (deleted). The copies arrive with receive count 1:
  an activity worker reads a receive count above 1 as "the worker before me died", and would
  record an attempt that never ran as timed out; they are not walked towards the DLQ either.
  At least once holds: the copy is sent before the original is deleted, and an original whose
  copy could not be sent is reported failed, so SQS delivers it again.
- the FIFO workflow-task queue: re-sending would put the messages behind their workflow's
  later ones, so they are reported failed and made visible again at once
  (ChangeMessageVisibility 0). Their receive count goes up, which the decider does not read as
  an attempt (a consumed message coming back only makes it re-send that batch's outbox).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from . import _runtime
from ._aws.budget import InvocationBudget
from ._core import wire
from ._core.envelope import is_sealed
from ._core.errors import PayloadIntegrityError
from ._engine.deferral import RetryLater, deferral_delay
from ._engine.ports import Metric

logger = Logger(service="ostinato")


#: Record handlers here take the record only. Powertools is given no Lambda context to inject
#: (`context=None`): with one it runs `inspect.signature` on the record handler at every
#: invocation to see whether it wants it (~0.1 ms, more than some whole activities).
_NO_INJECTION = None

#: The most a timer forward or a trigger start takes (a few AWS calls).
QUICK = 2.0


def _receive_count(record: SQSRecord) -> int:
    return int(record.attributes.approximate_receive_count or 1)


Handler = Callable[[dict[str, Any], Any], Any]


def _observed(handler: Handler) -> Handler:
    """Publish the runtime's metrics once per invocation (EMF lines in the function's log),
    whatever the invocation's outcome."""

    @functools.wraps(handler)
    def invoke(event: dict[str, Any], context: Any) -> Any:
        observer = _runtime.get().engine.observer
        try:
            return handler(event, context)
        finally:
            observer.flush()

    return invoke


class _Untouched(Exception):
    """Not started: the invocation is running out of time (see the module docstring)."""


def _standard_batch(event: dict[str, Any], context: Any,
                    handle: Callable[[SQSRecord, InvocationBudget], None],
                    need: Callable[[SQSRecord], float | None]) -> dict[str, Any]:
    """A standard queue's batch with partial failures and the time guard: the records the
    budget does not admit are re-sent as new messages and reported done (any that could not
    be re-sent are reported failed instead)."""
    budget = InvocationBudget(context)
    untouched: list[dict[str, Any]] = []

    def guarded(record: SQSRecord) -> None:
        if budget.admits(need(record)):
            handle(record, budget)
        else:
            untouched.append(record.raw_event)

    response: Any = process_partial_response(
        event=event, record_handler=guarded,
        processor=BatchProcessor(event_type=EventType.SQS), context=_NO_INJECTION)
    if untouched:
        logger.info(f"time guard: {len(untouched)} record(s) not started, sent again",
                    extra={"remaining_s": budget.remaining()})
        _runtime.get().engine.observer.count(Metric.UNTOUCHED, len(untouched))
        unsent = _runtime.get().transport.requeue(untouched[0]["eventSourceARN"],
                                                  [r["body"] for r in untouched])
        response["batchItemFailures"] += [{"itemIdentifier": untouched[i]["messageId"]}
                                          for i in unsent]
    return response


# -- poison messages ----------------------------------------------------------------------------
T = TypeVar("T")


def _open(raw_body: str) -> Any:
    """A body as the JSON it was sent as, through the payload pipeline (codecs, S3)."""
    if not is_sealed(raw_body):
        return json.loads(raw_body)
    return json.loads(_runtime.get().payloads.open(raw_body))


def _decode(raw_body: str, message_id: str, decode: Callable[[Any], T]) -> T:
    """A record's body decoded; a poison message (not JSON, or not a message of the protocol:
    `wire.WireError`) is logged with its SQS message id and re-raised, so it fails alone. A
    payload that cannot be read back exactly (`PayloadIntegrityError`) fails it too."""
    try:
        return decode(_open(raw_body))
    except ValueError:  # json.JSONDecodeError and wire.WireError are both ValueErrors
        logger.exception("poison message: its body is not a message ostinato can read",
                         extra={"message_id": message_id})
        raise
    except PayloadIntegrityError:
        logger.exception("message payload unreadable", extra={"message_id": message_id})
        raise


# -- workflow tasks (FIFO) ---------------------------------------------------------------------
class _GroupedDecider:
    """Decides once per workflow for all its messages in the batch (fewer replays, fewer writes).

    Powertools calls the record handler per record; the first record of a workflow group runs
    the decision for the whole group, the others share its outcome.

    Bodies are decoded one by one, so a poison message fails alone. FIFO order must hold, so
    its message group (one workflow) stops there: the group's earlier messages are decided,
    its later ones are failed by Powertools (`skip_group_on_error`) without reaching the
    handler, and every other group is decided in this same invocation.
    """

    def __init__(self, event: dict[str, Any], budget: InvocationBudget) -> None:
        self.budget = budget
        self.untouched: list[str] = []  # receipt handles of the groups not started
        self.groups: dict[str, list[wire.Delivery]] = {}
        self.receipts: dict[str, list[str]] = {}
        self.workflow_of: dict[str, str] = {}  # SQS message id -> workflow id
        self.poison: dict[str, ValueError] = {}  # SQS message id -> why it cannot be read
        stopped: set[str] = set()  # message groups holding a poison message
        for raw in event.get("Records", []):
            attributes = raw.get("attributes", {})
            group = attributes.get("MessageGroupId")
            if group in stopped:
                continue
            try:
                msg = _decode(raw["body"], raw["messageId"], wire.decode_message)
            except ValueError as exc:
                self.poison[raw["messageId"]] = exc
                if group is not None:
                    stopped.add(group)
                continue
            delivery = wire.Delivery(msg, int(attributes.get("SentTimestamp", 0)) / 1000,
                                     int(attributes.get("ApproximateReceiveCount", 1)))
            self.workflow_of[raw["messageId"]] = msg.workflow_id
            self.groups.setdefault(msg.workflow_id, []).append(delivery)
            self.receipts.setdefault(msg.workflow_id, []).append(raw["receiptHandle"])
        self.outcome: dict[str, BaseException | None] = {}

    def __call__(self, record: SQSRecord) -> None:
        if record.message_id in self.poison:
            raise self.poison[record.message_id]
        wid = self.workflow_of[record.message_id]
        if wid not in self.outcome and not self.budget.admits(None):
            self.outcome[wid] = _Untouched()
            self.untouched += self.receipts[wid]
        if wid not in self.outcome:
            deliveries = self.groups[wid]
            logger.append_keys(workflow_id=wid, run_id=deliveries[0].message.run_id)
            runtime = _runtime.get()
            try:
                runtime.engine.handle_workflow_messages(deliveries)
                self.outcome[wid] = None
            except RetryLater as exc:
                logger.info(f"workflow task deferred: {exc}")
                runtime.engine.observer.count(Metric.DEFERRALS, len(deliveries))
                for receipt, delivery in zip(self.receipts[wid], deliveries, strict=True):
                    runtime.transport.retry_soon(receipt, deferral_delay(delivery.receives))
                self.outcome[wid] = exc
            except Exception as exc:
                logger.exception("workflow task failed; it will be redelivered")
                self.outcome[wid] = exc
        error = self.outcome[wid]
        if error is not None:
            raise error


@logger.inject_lambda_context(clear_state=True)
@_observed
def workflow_task(event: dict[str, Any], context: Any) -> Any:
    """SQS FIFO workflow-task queue -> decider."""
    decider = _GroupedDecider(event, InvocationBudget(context))
    response = process_partial_response(
        event=event, record_handler=decider,
        processor=SqsFifoPartialProcessor(skip_group_on_error=True),
        context=_NO_INJECTION)
    if decider.untouched:
        logger.info(f"time guard: {len(decider.untouched)} message(s) not started, released",
                    extra={"remaining_s": decider.budget.remaining()})
        _runtime.get().engine.observer.count(Metric.UNTOUCHED, len(decider.untouched))
        _runtime.get().transport.release(decider.untouched)
    return response


# -- activity tasks ----------------------------------------------------------------------------
#: Tasks whose bodies the time guard opened (by SQS message id), so that the attempt does not
#: open them again: a large body is an S3 read. Each invocation removes its own.
_opened: dict[str, wire.ActivityTask] = {}


def _activity_record(record: SQSRecord, budget: InvocationBudget) -> None:
    task = _opened.pop(record.message_id, None) or _decode(
        record.body, record.message_id, wire.ActivityTask.decode)
    logger.append_keys(workflow_id=task.workflow_id, run_id=task.run_id,
                       activity=f"{task.activity_type}#{task.seq}")
    _runtime.get().engine.handle_activity_task(task, _receive_count(record),
                                               budget.time_left())


def _activity_need(record: SQSRecord) -> float | None:
    """The longest the record's attempt may run (its timeouts), None if unbounded or poison."""
    from ._engine.activities import longest_attempt  # the activity function's path only

    try:
        task = _opened[record.message_id] = wire.ActivityTask.decode(_open(record.body))
    except (ValueError, PayloadIntegrityError):
        return None
    return longest_attempt(task, _runtime.get().engine.clock())


@logger.inject_lambda_context(clear_state=True)
@_observed
def activity_task(event: dict[str, Any], context: Any) -> Any:
    """SQS activity queue -> activity worker."""
    try:
        return _standard_batch(event, context, _activity_record, _activity_need)
    finally:
        for raw in event.get("Records", []):
            _opened.pop(raw.get("messageId", ""), None)


# -- due deliveries (timer queue; Scheduler targets it too) --------------------------------------
def _timer_record(record: SQSRecord, budget: InvocationBudget) -> None:
    _runtime.get().engine.handle_due(_decode(record.body, record.message_id, wire.Due.decode))


@logger.inject_lambda_context(clear_state=True)
@_observed
def timer(event: dict[str, Any], context: Any) -> Any:
    """SQS timer queue -> forward due timers, retries and wake-ups."""
    return _standard_batch(event, context, _timer_record, lambda record: QUICK)


# -- event triggers and schedule firings (trigger queue; EventBridge rule and Scheduler) ---------
def _trigger_message(body: Any) -> None:
    from ._client import triggers as _triggers

    runtime = _runtime.get()
    _triggers.handle_message(runtime.client, _triggers.triggers_of(runtime.app), body)


def _trigger_record(record: SQSRecord, budget: InvocationBudget) -> None:
    _trigger_message(_decode(record.body, record.message_id, lambda body: body))


@logger.inject_lambda_context(clear_state=True)
@_observed
def events(event: dict[str, Any], context: Any) -> Any:
    """Trigger SQS queue -> start workflows for EventBridge events and schedule firings.

    Also takes an EventBridge event (or a Scheduler input) invoked directly, as a rule or
    schedule with a Lambda target would send it; a failure then raises for Lambda's retry.
    """
    if "Records" not in event:
        _trigger_message(event)
        return None
    return _standard_batch(event, context, _trigger_record, lambda record: QUICK)


# -- the HTTP API (API Gateway HTTP API, payload format 2.0) ------------------------------------
def __getattr__(name: str) -> Any:
    """`api`, the HTTP API handler, is built on first import of it: its routes (pydantic,
    the Powertools resolver) load at the api function's cold start, not the SQS handlers'."""
    if name != "api":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ._api import routes

    def api(event: dict[str, Any], context: Any) -> Any:
        """API Gateway HTTP API -> the routes of `_api.routes`, served by the runtime's client."""
        return routes.handle(event, context, _runtime.get().client)

    globals()["api"] = api
    return api
