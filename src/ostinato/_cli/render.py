"""How the CLI shows things: JSON documents, rich tables' cells, statuses and event types."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from .._core.history import Status

STATUS_STYLES = {Status.RUNNING: "cyan", Status.COMPLETED: "green", Status.FAILED: "red",
                 Status.CANCELLED: "yellow", Status.TERMINATED: "magenta",
                 Status.TIMED_OUT: "red", Status.CONTINUED_AS_NEW: "blue"}


def console() -> Any:
    from rich.console import Console

    return Console()


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def escape(text: str) -> str:
    """`text` shown as is in rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value)


def short_time(value: str | None) -> str:
    if not value:
        return ""
    return timestamp(value).strftime("%m-%d %H:%M:%S")


def style_event(event_type: str) -> str:
    if event_type.endswith(("Failed", "TimedOut", "Terminated")):
        return f"[red]{event_type}[/]"
    if event_type.startswith("WorkflowExecution") and event_type.endswith(
            ("Completed", "Started")):
        return f"[green]{event_type}[/]"
    return event_type
