"""The Lambda entry points; `functions/*/app.py` re-export these.

Each parses its trigger with Powertools, calls the engine once, and shapes the response.
SQS triggers report partial batch failures, so one bad message never re-runs its batch-mates.
Each invocation builds its own batch processor: a Powertools processor keeps the batch's
records and failures on itself, so one shared by `ostinato dev`'s poller threads would hand
one queue's failures to another's invocation.
"""

from __future__ import annotations

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
from ._core import wire
from ._engine import RetryLater, deferral_delay

logger = Logger(service="ostinato")


def _receive_count(record: SQSRecord) -> int:
    return int(record.attributes.approximate_receive_count or 1)


# -- poison messages ----------------------------------------------------------------------------
T = TypeVar("T")


def _decode(raw_body: str, message_id: str, decode: Callable[[Any], T]) -> T:
    """A record's body decoded; a poison message (not JSON, or not a message of the protocol:
    `wire.WireError`) is logged with its SQS message id and re-raised, so it fails alone."""
    try:
        return decode(json.loads(raw_body))
    except ValueError:  # json.JSONDecodeError and wire.WireError are both ValueErrors
        logger.exception("poison message: its body is not a message ostinato can read",
                         extra={"message_id": message_id})
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

    def __init__(self, event: dict[str, Any]) -> None:
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
        if wid not in self.outcome:
            deliveries = self.groups[wid]
            logger.append_keys(workflow_id=wid, run_id=deliveries[0].message.run_id)
            runtime = _runtime.get()
            try:
                runtime.engine.handle_workflow_messages(deliveries)
                self.outcome[wid] = None
            except RetryLater as exc:
                logger.info(f"workflow task deferred: {exc}")
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
def workflow_task(event: dict[str, Any], context: Any) -> Any:
    """SQS FIFO workflow-task queue -> decider."""
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    return process_partial_response(event=event, record_handler=_GroupedDecider(event),
                                    processor=processor, context=context)


# -- activity tasks ----------------------------------------------------------------------------
def _activity_record(record: SQSRecord) -> None:
    task = _decode(record.body, record.message_id, wire.ActivityTask.decode)
    logger.append_keys(workflow_id=task.workflow_id, run_id=task.run_id,
                       activity=f"{task.activity_type}#{task.seq}")
    _runtime.get().engine.handle_activity_task(task, _receive_count(record))


@logger.inject_lambda_context(clear_state=True)
def activity_task(event: dict[str, Any], context: Any) -> Any:
    """SQS activity queue -> activity worker."""
    return process_partial_response(event=event, record_handler=_activity_record,
                                    processor=BatchProcessor(event_type=EventType.SQS),
                                    context=context)


# -- due deliveries (timer queue; Scheduler targets it too) --------------------------------------
def _timer_record(record: SQSRecord) -> None:
    _runtime.get().engine.handle_due(_decode(record.body, record.message_id, wire.Due.decode))


@logger.inject_lambda_context(clear_state=True)
def timer(event: dict[str, Any], context: Any) -> Any:
    """SQS timer queue -> forward due timers, retries and wake-ups."""
    return process_partial_response(event=event, record_handler=_timer_record,
                                    processor=BatchProcessor(event_type=EventType.SQS),
                                    context=context)


# -- event triggers and schedule firings (trigger queue; EventBridge rule and Scheduler) ---------
def _trigger_message(body: Any) -> None:
    from ._client import triggers as _triggers

    runtime = _runtime.get()
    _triggers.handle_message(runtime.client, _triggers.triggers_of(runtime.app), body)


def _trigger_record(record: SQSRecord) -> None:
    _trigger_message(_decode(record.body, record.message_id, lambda body: body))


@logger.inject_lambda_context(clear_state=True)
def events(event: dict[str, Any], context: Any) -> Any:
    """Trigger SQS queue -> start workflows for EventBridge events and schedule firings.

    Also takes an EventBridge event (or a Scheduler input) invoked directly, as a rule or
    schedule with a Lambda target would send it; a failure then raises for Lambda's retry.
    """
    if "Records" not in event:
        _trigger_message(event)
        return None
    return process_partial_response(event=event, record_handler=_trigger_record,
                                    processor=BatchProcessor(event_type=EventType.SQS),
                                    context=context)


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
