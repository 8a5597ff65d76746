"""Starting a workflow once per id: what event triggers and schedule firings share.

EventBridge and Scheduler deliver at least once. Both derive the workflow id from what was
delivered (the event, the schedule and its fire time), so a repeated delivery names the same
id. `start_once` starts nothing when the id already has a run, whatever its status: a
delivery arriving after the first run closed must not start a second one, which
`id_conflict_policy="use_existing"` alone (it only looks at RUNNING runs) would allow. Two
deliveries racing each other both reach `start_workflow`, where the conditional write of
the run lets one win and hands the other the winner's run; `id_reuse_policy=
"reject_duplicate"` makes that write refuse an id that ever had a run, closed ones included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .._core.errors import WorkflowAlreadyStartedError
from .._engine.ports import Scheduler, Store


class Started(Protocol):
    run_id: str | None


class Starter(Protocol):
    """What schedules and triggers need of a client: its ports, and a way to start."""

    store: Store
    scheduler: Scheduler
    clock: Callable[[], float]

    def check_workflow_type(self, workflow_type: str) -> None:
        """Raise `UnknownTypeError` unless the type is registered (when an App is known)."""

    def start_workflow(self, workflow: Any, *args: Any, id: str | None = None,
                       id_conflict_policy: str = "fail",
                       id_reuse_policy: str = "allow_duplicate") -> Started: ...

Action = Literal["started", "duplicate", "skipped", "dropped"]


@dataclass(frozen=True)
class Outcome:
    """What one trigger or firing did with a delivery."""

    action: Action
    workflow_id: str | None = None
    run_id: str | None = None
    reason: str = ""

    def __str__(self) -> str:
        target = f" {self.workflow_id}" if self.workflow_id else ""
        run = f" (run {self.run_id})" if self.run_id else ""
        why = f": {self.reason}" if self.reason else ""
        return f"{self.action}{target}{run}{why}"


def start_once(client: Starter, workflow_type: str, workflow_id: str, args: list[Any],
               fresh: bool = False) -> Outcome:
    """Start `workflow_type(*args)` as `workflow_id` unless that id has ever had a run.

    `fresh`: the caller knows no earlier delivery got this far (a schedule firing it has
    just claimed), so the read of the id's run is skipped.
    """
    existing = None if fresh else client.store.get_head(workflow_id)
    if existing is not None:
        return Outcome("duplicate", workflow_id, existing.run_id,
                       f"already started ({existing.status}): a repeated delivery")
    try:
        handle = client.start_workflow(workflow_type, *args, id=workflow_id,
                                       id_conflict_policy="use_existing",
                                       id_reuse_policy="reject_duplicate")
    except WorkflowAlreadyStartedError as taken:  # a racing delivery's run closed already
        return Outcome("duplicate", workflow_id, taken.run_id, "already started and closed")
    return Outcome("started", workflow_id, handle.run_id)
