"""In-memory stand-ins for the DynamoDB store and the SQS/Scheduler transport.

The seed of an in-memory backend: enough of `ostinato._aws.store.Store` and
`ostinato._aws.transport.Transport` for the real `Engine` to decide workflows with no moto,
botocore or pynamodb in the loop. The benchmarks use them to time the engine on its own
(W1') and to build long histories quickly.

Not yet a full backend: no describe/list, no signals or schedules, heads are set by the
caller, and delayed deliveries are forwarded at once.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from .._aws.transport import Transport
from .._core import history as h


class MemStore:
    """Just enough of `ostinato._aws.store.Store` for the engine, in memory.

    Batches are kept as JSON text (like the DynamoDB items) so encoding and decoding still
    cost what they cost against DynamoDB. With `decode=False`, `load_batches` hands back the
    very objects that were appended instead (faster; for building histories).

    `heads` maps a workflow id to its `ostinato._aws.store.Head`; the caller puts the head
    there before the first workflow task, as `Client.start_workflow` would.
    """

    def __init__(self, decode: bool = True) -> None:
        self.heads: dict[str, Any] = {}
        #: run id -> the stored rows, one tuple per batch, payloads as JSON text
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        #: decode=False hands back the appended objects (faster; for building histories)
        self.decode = decode
        self.objects: dict[str, list[h.Batch]] = {}

    def get_head(self, wid: str) -> Any:
        """The head of workflow id `wid`, or None."""
        return self.heads.get(wid)

    def load_batches(self, rid: str, after: int = 0) -> list[h.Batch]:
        """The batches of run `rid` after the first `after`, in order."""
        if not self.decode:
            return list(self.objects.get(rid, []))[after:]
        return [h.Batch(n, first, t, decided, [tuple(ev) for ev in json.loads(events)],
                        json.loads(outbox), list(consumed), json.loads(state))
                for n, first, t, decided, events, outbox, consumed, state
                in self.rows.get(rid, [])[after:]]

    def append(self, rid: str, batch: h.Batch) -> None:
        """Store `batch` as the next one of run `rid`.

        Raises `AppendConflict` when that batch number is already stored, as the conditional
        write does on DynamoDB.
        """
        from .._aws.store import AppendConflict  # pynamodb is imported only when needed

        rows = self.rows.setdefault(rid, [])
        if len(rows) >= batch.number:
            raise AppendConflict(f"batch {batch.number} exists")
        dumps = json.dumps
        rows.append((batch.number, batch.first_event_id, batch.time, batch.decided,
                     dumps(batch.events), dumps(batch.outbox), list(batch.consumed),
                     dumps(batch.state)))
        self.objects.setdefault(rid, []).append(batch)

    def project(self, wid: str, rid: str, number: int, state: dict[str, Any],
                task_failure: str | None = None) -> bool:
        """Copy the run's status and batch number onto its head; always succeeds."""
        head = self.heads[wid]
        head.status, head.batch = state["status"], number
        return True

    def load_heartbeat(self, rid: str, seq: int) -> Any:
        """No heartbeats are kept: always None."""
        return None

    def save_heartbeat(self, *_: Any) -> None:
        """Heartbeats are dropped."""


class MemTransport(Transport):
    """`ostinato._aws.transport.Transport` over in-memory FIFO queues; due deliveries go at once.

    Only the primitives are replaced: outbox dispatch is the real one. Messages are copied
    through JSON, as SQS would. The caller drains `workflow` and `activity` and hands each
    message to the engine.
    """

    def __init__(self) -> None:  # no AWS clients
        #: workflow-task messages, oldest first
        self.workflow: deque[dict[str, Any]] = deque()
        #: activity tasks of every task queue, oldest first
        self.activity: deque[dict[str, Any]] = deque()

    def send_workflow_task(self, msg: dict[str, Any]) -> None:
        """Queue a workflow-task message."""
        self.workflow.append(json.loads(json.dumps(msg)))

    def activity_queue_url(self, task_queue: str) -> str:
        """A made-up URL naming the task queue."""
        return f"memory://{task_queue}"

    def send_activity_task(self, task_queue: str, task: dict[str, Any], delay: int = 0) -> None:
        """Queue an activity task; every task queue shares one queue and `delay` is ignored."""
        self.activity.append(json.loads(json.dumps(task)))

    def deliver_at(self, due: float, envelope: dict[str, Any], key: str) -> None:
        """Deliver `envelope` now, whatever `due` says (no clock here)."""
        self.forward(envelope)

    def cancel_at(self, key: str) -> None:
        """Nothing is ever pending, so there is nothing to cancel."""
