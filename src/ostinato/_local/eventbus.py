"""template.yaml's EventBridge rules on the emulated AWS, and events delivered through them.

On AWS the rule `TriggerRule` sends matching events of the default bus to the trigger SQS
queue, which the `events` function consumes. moto implements exactly that path (PutEvents ->
rule -> SQS target; it never invokes Lambda targets), so the local stack and the test
environment create the template's rules in moto and let the queue pollers do the rest.

The rule's source list is a deploy-time parameter (TriggerEventSources); locally it is the
template's default plus every source the App's triggers name, as if deployed with
`--parameter-overrides TriggerEventSources=<those sources>`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .retrying import retrying
from .template import ACCOUNT, resolver

if TYPE_CHECKING:
    from .._core.definitions import App
    from .template import Stack

SOURCES_PARAMETER = "TriggerEventSources"
REGION = "us-east-1"


@dataclass(frozen=True)
class LocalRule:
    """A rule created on the emulated AWS: its pattern and the SQS queues it targets."""

    logical_id: str
    name: str
    pattern: dict[str, Any]
    queue_urls: tuple[str, ...]


def local_parameters(template: dict[str, Any], app: App) -> dict[str, list[str]]:
    """Parameter values for the local stack: the trigger sources the App needs."""
    from .._client.triggers import trigger_sources

    param = template.get("Parameters", {}).get(SOURCES_PARAMETER)
    if param is None:
        return {}
    default = [s.strip() for s in str(param.get("Default", "")).split(",") if s.strip()]
    return {SOURCES_PARAMETER: sorted(set(default) | set(trigger_sources(app)))}


def create_rules(template: dict[str, Any], stack: Stack, session: Any, prefix: str,
                 parameters: dict[str, Any] | None = None,
                 region: str = REGION) -> list[LocalRule]:
    """Create the template's default-bus rules and their SQS targets through `session`."""
    resolve = resolver(template, stack, parameters)
    events = session.client("events", region_name=region)
    rules: list[LocalRule] = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        props = resolve(resource.get("Properties", {}))
        if props.get("EventBusName", "default") != "default" or "EventPattern" not in props:
            continue
        name = f"{prefix}-{logical_id}"[:64]
        events.put_rule(Name=name, EventPattern=json.dumps(props["EventPattern"]),
                        State=props.get("State", "ENABLED"))
        targets = [{"Id": t["Id"], "Arn": t["Arn"]} for t in props.get("Targets", [])
                   if t["Arn"] in stack.queue_urls_by_arn]
        if targets:
            events.put_targets(Rule=name, Targets=targets)
        rules.append(LocalRule(logical_id, name, props["EventPattern"],
                               tuple(stack.queue_urls_by_arn[t["Arn"]] for t in targets)))
    return rules


def as_event(value: dict[str, Any], now: float) -> dict[str, Any]:
    """A full EventBridge event from an event or a PutEvents entry (missing fields filled)."""
    if "Source" in value or "DetailType" in value:
        detail = value.get("Detail", "{}")
        value = {"source": value.get("Source"), "detail-type": value.get("DetailType"),
                 "detail": json.loads(detail) if isinstance(detail, str) else detail,
                 "resources": value.get("Resources", [])}
    for key in ("source", "detail-type"):
        if not isinstance(value.get(key), str) or not value[key]:
            raise ValueError(f"an EventBridge event needs a {key!r} string: {value!r:.200}")
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    envelope = {"version": "0", "id": str(uuid.uuid4()), "account": ACCOUNT, "time": stamp,
                "region": REGION, "resources": [], "detail": {}}
    return {**envelope, **value}


def matches(rule: LocalRule, event: dict[str, Any]) -> bool:
    """Does `rule`'s pattern match `event`? (moto's matcher: what its PutEvents uses.)"""
    from moto.events.models import EventPattern

    pattern: Any = EventPattern.load(json.dumps(rule.pattern))
    return bool(pattern.matches_event(event))


def deliver(rules: list[LocalRule], event: dict[str, Any], sqs: Any) -> int:
    """Send `event` as is to the queues of every rule it matches; return how many got it."""
    sent = 0
    for rule in rules:
        if matches(rule, event):
            for url in rule.queue_urls:
                # EventBridge retries a delivery to its target (at least once, as on AWS)
                retrying(sqs.send_message, QueueUrl=url, MessageBody=json.dumps(event))
                sent += 1
    return sent
