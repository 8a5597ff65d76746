"""Invoke the `functions/` handlers in-process with the Lambda events of `events/`."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

from ostinato._local.emulator import LambdaContext

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def api(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One HTTP API request through the api handler: (status, decoded JSON body or None)."""
    from functions.api.app import handler

    event = load("api_start_workflow.json")
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    if body is None:
        event.pop("body")
        event["headers"].pop("content-length")
    else:
        text = json.dumps(body)
        event["body"], event["isBase64Encoded"] = text, False
        event["headers"]["content-length"] = str(len(text.encode()))
    answer = handler(event, LambdaContext("ApiFunction", aws_request_id="test"))
    raw = answer.get("body") or ""
    if answer.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return answer["statusCode"], (json.loads(raw) if raw else None)


def sqs_event(sample: str, *bodies: Any) -> dict[str, Any]:
    """The SQS event of `sample`, its record repeated with each of `bodies` (dicts as JSON)."""
    event = load(sample)
    template = event["Records"][0]
    event["Records"] = []
    for n, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = f"{template['messageId'][:-4]}{n:04d}"
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        event["Records"].append(record)
    return event


def invoke_events(event: dict[str, Any]) -> Any:
    """The `events` function (trigger queue consumer) on `event`."""
    from functions.events.app import handler

    return handler(event, LambdaContext("EventsFunction", aws_request_id="test"))
