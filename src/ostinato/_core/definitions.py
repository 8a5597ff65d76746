"""The authoring API: `@workflow`, `@activity`, `RetryPolicy` and the `App` registry."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, TypeVar, overload

from .errors import OstinatoError, UnknownTypeError

#: The environment variable naming the workflow code, as `package.module:app`.
APP_ENV = "OSTINATO_APP"

F = TypeVar("F", bound=Callable[..., Any])


def seconds(value: float | timedelta | None) -> float | None:
    """Normalise a duration given as seconds or a timedelta."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing activity is retried (Temporal's semantics).

    `maximum_attempts=0` means unlimited; `maximum_interval` defaults to 100 x the initial one.
    """

    initial_interval: timedelta = timedelta(seconds=1)
    backoff_coefficient: float = 2.0
    maximum_interval: timedelta | None = None
    maximum_attempts: int = 0
    non_retryable_error_types: tuple[str, ...] | list[str] = ()

    def __post_init__(self) -> None:
        if self.backoff_coefficient < 1:
            raise ValueError("backoff_coefficient must be >= 1")
        if self.maximum_attempts < 0:
            raise ValueError("maximum_attempts must be >= 0")
        object.__setattr__(self, "non_retryable_error_types", tuple(self.non_retryable_error_types))

    def to_dict(self) -> dict[str, Any]:
        return {
            "initial_interval": self.initial_interval.total_seconds(),
            "backoff_coefficient": self.backoff_coefficient,
            "maximum_interval": seconds(self.maximum_interval),
            "maximum_attempts": self.maximum_attempts,
            "non_retryable_error_types": list(self.non_retryable_error_types),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        maximum = data.get("maximum_interval")
        return cls(
            initial_interval=timedelta(seconds=data["initial_interval"]),
            backoff_coefficient=data["backoff_coefficient"],
            maximum_interval=None if maximum is None else timedelta(seconds=maximum),
            maximum_attempts=data["maximum_attempts"],
            non_retryable_error_types=tuple(data["non_retryable_error_types"]),
        )


@dataclass(frozen=True)
class ActivityOptions:
    """Options of one activity invocation: the decorator's, overridden per call."""

    task_queue: str = "default"
    start_to_close_timeout: float | None = None
    schedule_to_close_timeout: float | None = None
    heartbeat_timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def merged(self, overrides: dict[str, Any]) -> ActivityOptions:
        known = {"task_queue", "start_to_close_timeout", "schedule_to_close_timeout",
                 "heartbeat_timeout", "retry", "retry_policy"}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown activity option(s): {', '.join(sorted(unknown))}")
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key in ("retry", "retry_policy"):
                changes["retry"] = value
            elif key == "task_queue":
                changes[key] = value
            else:
                changes[key] = seconds(value)
        return replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_queue": self.task_queue,
            "start_to_close_timeout": self.start_to_close_timeout,
            "schedule_to_close_timeout": self.schedule_to_close_timeout,
            "heartbeat_timeout": self.heartbeat_timeout,
            "retry": self.retry.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActivityOptions:
        return cls(
            task_queue=data["task_queue"],
            start_to_close_timeout=data["start_to_close_timeout"],
            schedule_to_close_timeout=data["schedule_to_close_timeout"],
            heartbeat_timeout=data["heartbeat_timeout"],
            retry=RetryPolicy.from_dict(data["retry"]),
        )


@dataclass(frozen=True)
class ActivityDefinition:
    name: str
    fn: Callable[..., Any]
    options: ActivityOptions
    is_async: bool


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    fn: Callable[..., Any]
    execution_timeout: float | None = None


def _attach(fn: F, attr: str, definition: Any) -> F:
    setattr(fn, attr, definition)
    return fn


@overload
def activity(fn: F, /) -> F: ...
@overload
def activity(
    *,
    name: str | None = None,
    task_queue: str = "default",
    start_to_close_timeout: float | timedelta | None = None,
    schedule_to_close_timeout: float | timedelta | None = None,
    heartbeat_timeout: float | timedelta | None = None,
    retry: RetryPolicy | None = None,
) -> Callable[[F], F]: ...
def activity(fn: Any = None, /, *, name: str | None = None, task_queue: str = "default",
             start_to_close_timeout: float | timedelta | None = None,
             schedule_to_close_timeout: float | timedelta | None = None,
             heartbeat_timeout: float | timedelta | None = None,
             retry: RetryPolicy | None = None) -> Any:
    """Mark a function (sync or async) as an activity. The function stays directly callable."""

    def decorate(f: F) -> F:
        options = ActivityOptions(
            task_queue=task_queue,
            start_to_close_timeout=seconds(start_to_close_timeout),
            schedule_to_close_timeout=seconds(schedule_to_close_timeout),
            heartbeat_timeout=seconds(heartbeat_timeout),
            retry=retry or RetryPolicy(),
        )
        definition = ActivityDefinition(
            name=name or f.__name__, fn=f, options=options,
            is_async=inspect.iscoroutinefunction(f),
        )
        return _attach(f, "__ostinato_activity__", definition)

    return decorate(fn) if fn is not None else decorate


@overload
def workflow(fn: F, /) -> F: ...
@overload
def workflow(*, name: str | None = None,
             execution_timeout: float | timedelta | None = None) -> Callable[[F], F]: ...
def workflow(fn: Any = None, /, *, name: str | None = None,
             execution_timeout: float | timedelta | None = None) -> Any:
    """Mark an `async def (ctx, *args)` as a workflow; the type name defaults to its name.

    Tasks it starts (`asyncio.create_task`) are kept until the run ends. One that fails
    without being awaited, gathered or asked for its `exception()` fails the workflow with
    that error when the workflow function returns; one still running then is abandoned.
    """

    def decorate(f: F) -> F:
        if not inspect.iscoroutinefunction(f):
            raise TypeError(f"workflow {f.__name__!r} must be an async def taking (ctx, *args)")
        definition = WorkflowDefinition(
            name=name or f.__name__, fn=f, execution_timeout=seconds(execution_timeout)
        )
        return _attach(f, "__ostinato_workflow__", definition)

    return decorate(fn) if fn is not None else decorate


def activity_definition(fn_or_def: Any) -> ActivityDefinition:
    definition = getattr(fn_or_def, "__ostinato_activity__", None)
    if definition is None:
        raise TypeError(f"{fn_or_def!r} is not an @activity")
    return definition


def workflow_definition(fn_or_def: Any) -> WorkflowDefinition:
    definition = getattr(fn_or_def, "__ostinato_workflow__", None)
    if definition is None:
        raise TypeError(f"{fn_or_def!r} is not a @workflow")
    return definition


def type_name(fn_or_name: Any, kind: str) -> str:
    """The registered type name of a workflow/activity function, or the given name."""
    if isinstance(fn_or_name, str):
        return fn_or_name
    definition = getattr(fn_or_name, f"__ostinato_{kind}__", None)
    if definition is None:
        raise TypeError(f"{fn_or_name!r} is neither a type name nor an @{kind}")
    return definition.name


class App:
    """The explicit registry of workflows, activities and triggers that handlers load.

    Handlers find it through `OSTINATO_APP=package.module:app`. `codec` (an
    `ostinato.codecs` codec, or a list applied in order) transforms every payload the
    handlers, and clients built with this app, store or send.
    """

    def __init__(self, workflows: Iterable[Any] = (), activities: Iterable[Any] = (),
                 triggers: Iterable[Any] = (), codec: Any = None) -> None:
        from .codecs import chain

        chain(codec)  # a wrong codec fails here, not at the first payload
        self.codec = codec
        self.workflows: dict[str, WorkflowDefinition] = {}
        self.activities: dict[str, ActivityDefinition] = {}
        for wf in workflows:
            wf_def = workflow_definition(wf)
            if wf_def.name in self.workflows:
                raise ValueError(f"workflow type {wf_def.name!r} registered twice")
            self.workflows[wf_def.name] = wf_def
        for act in activities:
            act_def = activity_definition(act)
            if act_def.name in self.activities:
                raise ValueError(f"activity type {act_def.name!r} registered twice")
            self.activities[act_def.name] = act_def
        self.triggers = list(triggers)

    def workflow(self, name: str) -> WorkflowDefinition:
        try:
            return self.workflows[name]
        except KeyError:
            raise UnknownTypeError(f"unknown workflow type {name!r}") from None

    def activity(self, name: str) -> ActivityDefinition:
        try:
            return self.activities[name]
        except KeyError:
            raise UnknownTypeError(f"unknown activity type {name!r}") from None

    @property
    def task_queues(self) -> set[str]:
        return {a.options.task_queue for a in self.activities.values()}


class NoAppError(OstinatoError, RuntimeError):
    """The client needs the workflow code (an App) for this call and has none."""


@functools.cache
def load_app(spec: str) -> App:
    """Import `package.module:attr` and return the App it names."""
    import importlib

    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    app = getattr(module, attr or "app")
    if not isinstance(app, App):
        raise TypeError(f"{spec!r} is not an ostinato.App")
    return app
