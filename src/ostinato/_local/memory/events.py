"""EventBridge in memory: the default bus's rules, their event patterns and SQS targets.

PutEvents builds each entry's event (id, time, account, region filled in), matches it
against every ENABLED rule and sends it, as JSON, to each matching rule's SQS targets. An
entry without Source, DetailType or a JSON-object Detail fails alone, as EventBridge answers
it (`FailedEntryCount`, an `ErrorCode` on that entry). Patterns: a value list (any of them
equal), nested objects, and the content filters prefix, suffix, equals-ignore-case,
anything-but, exists and numeric.

`MemoryEventBridge.client()` answers the boto3 calls the adapter (`EventBridgeBus`) and the
local rule set-up (`_local/eventbus.create_rules`) make.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..template import ACCOUNT
from .sqs import MemorySqs

REGION = "us-east-1"
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, "=": lambda a, b: a == b,
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b}


def _numeric(value: Any, spec: list[Any]) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return all(_OPS[op](value, bound) for op, bound in zip(spec[::2], spec[1::2], strict=True))


def _one(rule: Any, value: Any, present: bool) -> bool:
    """Does one pattern element match one value (`present`: the field exists)?"""
    if not isinstance(rule, dict):
        return present and rule == value
    (op, arg), = rule.items()
    if op == "exists":
        return present is bool(arg)
    if not present:
        return op == "anything-but"
    if op == "prefix":
        return isinstance(value, str) and value.startswith(arg)
    if op == "suffix":
        return isinstance(value, str) and value.endswith(arg)
    if op == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(arg).lower()
    if op == "numeric":
        return _numeric(value, arg)
    if op == "anything-but":
        if isinstance(arg, dict):
            return not _one(arg, value, present)
        return value not in (arg if isinstance(arg, list) else [arg])
    raise ValueError(f"unsupported event pattern filter {op!r}")


def pattern_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Does `event` match the EventBridge `pattern` (see the module docstring)?"""
    for key, rule in pattern.items():
        present = isinstance(event, dict) and key in event
        value = event.get(key) if present else None
        if isinstance(rule, dict):
            if not isinstance(value, dict) or not pattern_matches(rule, value):
                return False
            continue
        values = value if isinstance(value, list) else [value]
        if not any(_one(r, v, present) for r in rule for v in values):
            return False
    return True


@dataclass
class _Rule:
    name: str
    pattern: dict[str, Any]
    state: str
    targets: dict[str, str] = field(default_factory=dict)  # target id -> ARN


class MemoryEventBridge:
    """The default bus of one environment (see the module docstring)."""

    def __init__(self, sqs: MemorySqs, clock: Callable[[], float]) -> None:
        self.sqs = sqs
        self.clock = clock
        self.lock = threading.RLock()
        self.rules: dict[str, _Rule] = {}

    def publish(self, event: dict[str, Any]) -> int:
        """Send `event` to the targets of every rule it matches; return how many got it."""
        body = json.dumps(event)
        sent = 0
        with self.lock:
            targets = [arn for rule in self.rules.values() if rule.state == "ENABLED"
                       and pattern_matches(rule.pattern, event) for arn in rule.targets.values()]
        for arn in targets:
            with self.sqs.lock:
                self.sqs.by_arn(arn).send(body)
            sent += 1
        return sent

    def client(self) -> EventsClient:
        return EventsClient(self)


def _entry_error(entry: dict[str, Any]) -> str | None:
    for key in ("Source", "DetailType", "Detail"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            return f"Parameter {key} is not valid."
    try:
        detail = json.loads(entry["Detail"])
    except ValueError:
        return "Detail is malformed."
    return None if isinstance(detail, dict) else "Detail is malformed."


class EventsClient:
    """The boto3 EventBridge client calls made here, answered in memory."""

    def __init__(self, bus: MemoryEventBridge) -> None:
        self._bus = bus

    def put_rule(self, Name: str, EventPattern: str, State: str = "ENABLED",
                 **_: Any) -> dict[str, Any]:
        with self._bus.lock:
            old = self._bus.rules.get(Name)
            self._bus.rules[Name] = _Rule(Name, json.loads(EventPattern), State,
                                          old.targets if old else {})
        return {"RuleArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{Name}"}

    def put_targets(self, Rule: str, Targets: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        with self._bus.lock:
            self._bus.rules[Rule].targets.update({t["Id"]: t["Arn"] for t in Targets})
        return {"FailedEntryCount": 0, "FailedEntries": []}

    def put_events(self, Entries: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        answers: list[dict[str, Any]] = []
        stamp = datetime.fromtimestamp(self._bus.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for entry in Entries:
            problem = _entry_error(entry)
            if problem is not None:
                answers.append({"ErrorCode": "InvalidArgument", "ErrorMessage": problem})
                continue
            event_id = str(uuid.uuid4())
            self._bus.publish({
                "version": "0", "id": event_id, "detail-type": entry["DetailType"],
                "source": entry["Source"], "account": ACCOUNT, "time": stamp,
                "region": REGION, "resources": list(entry.get("Resources", [])),
                "detail": json.loads(entry["Detail"])})
            answers.append({"EventId": event_id})
        return {"FailedEntryCount": sum("ErrorCode" in a for a in answers), "Entries": answers}
