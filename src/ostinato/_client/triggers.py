"""Event triggers: EventBridge events that start workflows, and the trigger queue's messages.

`template.yaml` routes events from the default bus (sources listed in the TriggerEventSources
parameter) to the trigger SQS queue, and EventBridge Scheduler delivers schedule firings to the
same queue; the `events` function hands each message to `handle_message`:

- a schedule firing goes to `_schedules.handle_firing`;
- an EventBridge event is matched against the App's `EventTrigger`s; each match starts its
  workflow once (`_starts.start_once`) under the id the trigger derives from the event, so a
  repeated delivery starts nothing new; an event no trigger matches is logged and dropped;
- a trigger whose `id` or `args` function raises (or that names an unknown workflow) fails the
  message after the other matching triggers ran: SQS delivers it again and, once the
  redrive limit is reached, parks it in the trigger DLQ, where it waits for fixed code and a
  redrive instead of being lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any

from .._core.definitions import type_name
from .._core.errors import OstinatoError
from .starts import Outcome, Starter, start_once

if TYPE_CHECKING:
    from .._core.definitions import App

log = logging.getLogger("ostinato.triggers")

Event = dict[str, Any]


class TriggerError(OstinatoError):
    """A trigger could not compute its workflow's id or arguments from an event."""


def _names(value: str | Sequence[str] | None, what: str) -> frozenset[str] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"EventTrigger {what} must be a non-empty string or list of strings")
    return frozenset(names)


@dataclass(frozen=True)
class EventTrigger:
    """Start `workflow` for every EventBridge event from `source` (and `detail_type`).

    Args:
        workflow: the @workflow function or its type name.
        source: the event's `source` (or a list of sources) to match.
        detail_type: the event's `detail-type` (or a list); None matches any.
        args: event -> the workflow's argument list; defaults to `[event["detail"]]`.
        id: event -> the workflow id. The id names the event: an event whose id has
            already had a run (running or closed) starts nothing, so derive it from what
            identifies the business event (an order number), not the entity it concerns.
            Defaults to `<workflow type>-<EventBridge event id>`, which is stable across
            EventBridge's redeliveries but not across a producer's retried PutEvents.
    """

    workflow: Any
    _: KW_ONLY
    source: str | Sequence[str]
    detail_type: str | Sequence[str] | None = None
    args: Callable[[Event], Sequence[Any]] | None = None
    id: Callable[[Event], str] | None = None

    def __post_init__(self) -> None:
        type_name(self.workflow, "workflow")  # a function that is no @workflow fails here
        _names(self.source, "source")
        _names(self.detail_type, "detail_type")

    @property
    def workflow_type(self) -> str:
        return type_name(self.workflow, "workflow")

    @property
    def sources(self) -> frozenset[str]:
        return _names(self.source, "source") or frozenset()

    def matches(self, event: Event) -> bool:
        detail_types = _names(self.detail_type, "detail_type")
        return event.get("source") in self.sources and (
            detail_types is None or event.get("detail-type") in detail_types)

    def workflow_id(self, event: Event) -> str:
        if self.id is None:
            return f"{self.workflow_type}-{event['id']}"
        wid = self.id(event)
        if not isinstance(wid, str):
            raise TypeError(f"id function returned {type(wid).__name__}, not a str")
        return wid

    def workflow_args(self, event: Event) -> list[Any]:
        if self.args is None:
            return [event.get("detail")]
        args = self.args(event)
        if isinstance(args, str | bytes | dict) or not isinstance(args, Sequence):
            raise TypeError(f"args function returned {type(args).__name__}, not a list")
        return list(args)

    def start(self, client: Starter, event: Event) -> Outcome:
        """Start this trigger's workflow for `event`, once."""
        try:
            wid = self.workflow_id(event)
            args = self.workflow_args(event)
        except Exception as exc:
            raise TriggerError(f"trigger for workflow {self.workflow_type!r}: "
                               f"{type(exc).__name__}: {exc}") from exc
        return start_once(client, self.workflow_type, wid, args)


def triggers_of(app: App) -> list[EventTrigger]:
    """The App's event triggers; `TypeError` for anything else in `triggers=`."""
    triggers = list(app.triggers)
    for trigger in triggers:
        if not isinstance(trigger, EventTrigger):
            raise TypeError(f"App triggers must be EventTrigger, not {trigger!r}")
    return triggers


def check_triggers(app: App) -> list[EventTrigger]:
    """Every trigger names a registered workflow (`UnknownTypeError` otherwise)."""
    triggers = triggers_of(app)
    for trigger in triggers:
        app.workflow(trigger.workflow_type)
    return triggers


def trigger_sources(app: App) -> list[str]:
    """The event sources the App's triggers listen to (what TriggerEventSources must list)."""
    return sorted({s for t in triggers_of(app) for s in t.sources})


def describe_event(event: Event) -> str:
    return (f"event {event.get('id', '?')} ({event.get('source')!r}, "
            f"{event.get('detail-type')!r})")


def handle_event(client: Starter, triggers: Iterable[EventTrigger], event: Event
                 ) -> list[Outcome]:
    """Start the workflow of every trigger `event` matches (see the module docstring)."""
    matched = [t for t in triggers if t.matches(event)]
    if not matched:
        log.info("%s matches no trigger; dropped", describe_event(event))
        return [Outcome("dropped", reason="no trigger matches")]
    outcomes: list[Outcome] = []
    failures: list[Exception] = []
    for trigger in matched:
        try:
            client.check_workflow_type(trigger.workflow_type)
            outcomes.append(trigger.start(client, event))
        except Exception as exc:  # the other triggers still run; the message is retried
            log.error("%s: %s", describe_event(event), exc)
            failures.append(exc)
    for outcome in outcomes:
        log.info("%s: %s", describe_event(event), outcome)
    if failures:
        raise TriggerError(f"{describe_event(event)}: {len(failures)} of {len(matched)} "
                           f"trigger(s) failed: {failures[0]}") from failures[0]
    return outcomes


def handle_message(client: Starter, triggers: Iterable[EventTrigger], body: Any
                   ) -> list[Outcome]:
    """One message of the trigger queue: a schedule firing or an EventBridge event."""
    match body:
        case {"ostinato": "schedule", "schedule": str(name), "scheduled_time": str(at)}:
            from . import schedules  # only the events function needs cron and schedules

            outcome = schedules.handle_firing(client, name, at)
            log.info("schedule %s firing at %s: %s", name, at, outcome)
            return [outcome]
        case {"source": str(), "detail-type": str()}:
            return handle_event(client, triggers, body)
    log.warning("dropped a trigger-queue message that is neither an EventBridge event nor a "
                "schedule firing: %.200s", body)
    return [Outcome("dropped", reason="unrecognised message")]
