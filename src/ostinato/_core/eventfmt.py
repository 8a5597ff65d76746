"""One short human line per history event (the `ostinato dev` log, the CLI timeline)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

WIDTH = 120


def _json(value: Any, width: int = 60) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= width else text[:width - 1] + "…"


def _call(name: str, args: list[Any] | None) -> str:
    return f"{name}({', '.join(_json(a, 40) for a in args or [])})"


def _failure(attrs: dict[str, Any]) -> str:
    failure = attrs.get("failure") or {}
    kind = failure.get("type") or "error"
    return f"{kind}: {failure.get('message', '')}"


def _seq(attrs: dict[str, Any]) -> str:
    return f"#{attrs['seq']} " if "seq" in attrs else ""


_FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {
    "WorkflowExecutionStarted": lambda a: _call(a.get("workflow_type", "?"), a.get("args")),
    "ActivityTaskScheduled": lambda a: _seq(a) + _call(a.get("activity_type", "?"), a.get("args")),
    "ActivityTaskCompleted": lambda a: f"{_seq(a)}-> {_json(a.get('result'))}"
                                       + (f" (attempt {a['attempt']})" if a.get("attempt", 1) > 1
                                          else ""),
    "ActivityTaskFailed": lambda a: f"{_seq(a)}{_failure(a)} (attempt {a.get('attempt', '?')})",
    "ActivityTaskTimedOut": lambda a: f"{_seq(a)}{_failure(a)}",
    "ActivityTaskCancelRequested": lambda a: _seq(a).strip(),
    "ActivityTaskCanceled": lambda a: f"{_seq(a)}cancelled (attempt {a.get('attempt', '?')})",
    "TimerStarted": lambda a: f"{_seq(a)}{a.get('duration', 0):g}s",
    "TimerFired": lambda a: _seq(a).strip(),
    "TimerCanceled": lambda a: _seq(a).strip(),
    "WorkflowExecutionSignaled": lambda a: _call(a.get("name", "?"), a.get("args")),
    "WorkflowExecutionCancelRequested": lambda a: a.get("reason") or "",
    "WorkflowExecutionTerminated": lambda a: a.get("reason") or "",
    "WorkflowExecutionCompleted": lambda a: f"-> {_json(a.get('result'))}",
    "WorkflowExecutionFailed": _failure,
    "MarkerRecorded": lambda a: f"{_seq(a)}{a.get('marker', '')} {a.get('activity_type', '')}"
                                .rstrip(),
}

_HIDDEN = {"event_id", "event_type", "timestamp", "task"}


def summarize(event_type: str, attrs: dict[str, Any]) -> str:
    """A one-line description of an event's attributes."""
    fmt = _FORMATS.get(event_type)
    if fmt is not None:
        try:
            return fmt(attrs)
        except (KeyError, TypeError, ValueError):
            pass
    shown = {k: v for k, v in attrs.items() if k not in _HIDDEN}
    return _json(shown, WIDTH) if shown else ""
