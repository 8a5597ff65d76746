"""Latent bugs a review found, each pinned by a test that failed before its fix."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from ostinato import lambda_handlers
from ostinato._local.emulator import LambdaContext, sqs_record


# -- 1. one batch processor per invocation ------------------------------------------------------
def _sqs_event(batch: str, steps: list[str]) -> dict[str, Any]:
    messages = [{"MessageId": f"{batch}{n}", "ReceiptHandle": f"rh-{batch}{n}",
                 "Body": json.dumps({"step": step}), "Attributes": {}}
                for n, step in enumerate(steps)]
    return {"Records": [sqs_record(m, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
                        for m in messages]}


@pytest.mark.parametrize(("handler", "record_handler"), [
    ("activity_task", "_activity_record"), ("timer", "_timer_record"),
    ("events", "_trigger_record")])
def test_concurrent_invocations_each_report_only_their_own_batch_failures(
        monkeypatch, handler, record_handler):
    """`ostinato dev` runs one poller thread per queue: two batches in flight at once."""
    # given: record handlers that hold both invocations inside processing together
    inside = threading.Barrier(2, timeout=10)    # both batches have started
    processed = threading.Barrier(2, timeout=10)  # both batches ran every record

    def handle(record: Any) -> None:  # Powertools passes it by this name
        step = json.loads(record.body)["step"]
        if step == "first":
            inside.wait()
        elif step == "fail":
            raise RuntimeError("poison message")
        elif step == "last":
            processed.wait()

    monkeypatch.setattr(lambda_handlers, record_handler, handle)
    function = getattr(lambda_handlers, handler)
    events = {"a": _sqs_event("a", ["first", "fail", "last"]),
              "b": _sqs_event("b", ["first", "last"])}
    answers: dict[str, Any] = {}

    def invoke(batch: str) -> None:
        answers[batch] = function(events[batch], LambdaContext(handler, aws_request_id=batch))

    # when: both invocations run at the same time
    threads = [threading.Thread(target=invoke, args=(batch,)) for batch in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)

    # then: each answer names exactly its own failed records
    assert answers["a"] == {"batchItemFailures": [{"itemIdentifier": "a1"}]}
    assert answers["b"] == {"batchItemFailures": []}
