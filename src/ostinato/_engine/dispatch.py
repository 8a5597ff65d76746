"""Carrying out an outbox: table operations here, messages through the transport.

A table, one handler per entry type; every handler is safe to repeat (at-least-once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .._core import history as h
from .._core import keys, wire
from .ports import Head, StartConflict, Store, Transport

log = logging.getLogger("ostinato.engine")


class Dispatcher:
    """Runs outbox entries (see the module docstring)."""

    def __init__(self, store: Store, transport: Transport, clock: Callable[[], float]) -> None:
        self.store = store
        self.transport = transport
        self.clock = clock
        self._table: dict[type[wire.Outbox], Callable[[Any], None]] = {
            wire.SendMessage: lambda e: transport.send_workflow_task(e.msg),
            wire.SendActivity: lambda e: transport.send_activity_task(e.task),
            wire.DeliverAt: lambda e: transport.deliver_at(e.due, e.envelope, e.key),
            wire.CancelAt: lambda e: transport.cancel_at(e.key) if e.scheduler else None,
            wire.CancelActivity: lambda e: store.request_activity_cancel(e.run_id, e.seq),
            wire.ContinueRun: self._continue_as_new,
            wire.StartChild: self._start_child,
            wire.UpdateOutcome: lambda e: store.put_update_outcome(e.run_id, e.update_id,
                                                                   e.outcome),
        }

    def run(self, outbox: list[wire.Outbox]) -> None:
        for entry in outbox:
            self._table[type(entry)](entry)

    def _start_child(self, entry: wire.StartChild) -> None:
        """Start a child run once, however often a replaying parent asks (its run id is
        derived from the parent's), or tell the parent its id is taken."""
        head = Head(entry.workflow_id, entry.run_id, entry.workflow_type, h.Status.RUNNING,
                    self.clock(), entry.args, parent=entry.parent)
        try:
            self.store.create_head(head)
        except StartConflict as conflict:
            if conflict.head is None or conflict.head.run_id != entry.run_id:
                parent = entry.parent
                self.transport.send_workflow_task(wire.ChildOutcome(
                    parent["wid"], parent["rid"], keys.child_outcome(entry.run_id),
                    seq=parent["seq"], child_workflow_id=entry.workflow_id, status=h.Status.FAILED,
                    failure={"kind": "application", "type": "WorkflowAlreadyStarted",
                             "message": f"workflow {entry.workflow_id!r} is already running"}))
                return
        self.transport.send_workflow_task(wire.Start(entry.workflow_id, entry.run_id,
                                                     keys.start(entry.run_id)))

    def _continue_as_new(self, entry: wire.ContinueRun) -> None:
        """Hand the workflow id to the next run, then wake it (both safe to repeat)."""
        head = Head(entry.workflow_id, entry.new_run_id, entry.workflow_type, h.Status.RUNNING,
                    self.clock(), entry.args, continued_from=entry.run_id,
                    deadline=entry.deadline, parent=entry.parent)
        try:
            self.store.create_head(head, replacing=entry.run_id)
        except StartConflict as conflict:
            if conflict.head is None or conflict.head.run_id != entry.new_run_id:
                log.warning("workflow %s moved on before run %s could continue as new",
                            entry.workflow_id, entry.run_id)
                return  # else: written by an earlier attempt; make sure it is woken
        self.transport.send_workflow_task(wire.Start(entry.workflow_id, entry.new_run_id,
                                                     keys.start(entry.new_run_id)))
