"""In-memory stand-ins for the storage and delivery ports (the seed of the memory backend).

Enough of the `Store` and `Transport` ports for the real `Engine` to decide workflows with no
moto, botocore or pynamodb in the loop. The benchmarks use them to time the engine on its own
(W1') and to build long histories quickly.

Not yet a full backend: no describe/list, signals, outcomes or schedules, heads are set by the
caller, and deliveries due later are forwarded at once.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from ..._core import history as h
from ..._core import wire
from ..._engine.ports import AppendConflict, Head


class MemStore:
    """Just enough of the `Store` port for the engine, in memory.

    Batches are kept as their stored JSON body (like the DynamoDB items) so encoding and
    decoding still cost what they cost against DynamoDB. With `decode=False`, `load_batches`
    hands back the very objects that were appended instead (faster; for building histories).

    `heads` maps a workflow id to its `Head`; the caller puts the head there before the first
    workflow task, as `Client.start_workflow` would.
    """

    max_batch_bytes = h.MAX_BATCH_BYTES

    def __init__(self, decode: bool = True) -> None:
        self.heads: dict[str, Head] = {}
        #: run id -> one (number, first event id, time, decided, consumed, body) per batch
        self.rows: dict[str, list[tuple[int, int, float, bool, list[str], str]]] = {}
        self.decode = decode
        self.objects: dict[str, list[h.Batch]] = {}
        #: (run id, seq) of the activities whose cancellation was requested
        self.cancel_requests: set[tuple[str, int]] = set()

    def get_head(self, workflow_id: str) -> Head | None:
        return self.heads.get(workflow_id)

    def load_batches(self, run_id: str, after: int = 0, consistent: bool = True,
                     ) -> list[h.Batch]:
        """The batches of the run numbered above `after`, in order."""
        if not self.decode:
            return list(self.objects.get(run_id, []))[after:]
        return [h.decode_body(n, first, t, decided, list(consumed), body)
                for n, first, t, decided, consumed, body in self.rows.get(run_id, [])[after:]]

    def append(self, run_id: str, batch: h.Batch) -> None:
        """Store `batch` as the next one; `AppendConflict` if its number is taken."""
        rows = self.rows.setdefault(run_id, [])
        if len(rows) >= batch.number:
            raise AppendConflict(f"batch {batch.number} exists")
        body, _ = h.sized_body(batch)
        rows.append((batch.number, batch.first_event_id, batch.time, batch.decided,
                     list(batch.consumed), body))
        self.objects.setdefault(run_id, []).append(batch)

    def project(self, workflow_id: str, run_id: str, batch: int, state: dict[str, Any],
                task_failure: str | None = None) -> bool:
        """Copy the run's status and batch number onto its head; always succeeds."""
        head = self.heads[workflow_id]
        head.status, head.batch = state["status"], batch
        return True

    def load_heartbeat(self, run_id: str, seq: int) -> Any:
        """No heartbeat details are kept: always None."""
        return None

    def save_heartbeat(self, run_id: str, seq: int, attempt: int, details: Any) -> bool:
        """Details are dropped; answers whether cancellation was requested."""
        return (run_id, seq) in self.cancel_requests

    def heartbeat_state(self, run_id: str, seq: int) -> tuple[Any, bool]:
        return None, (run_id, seq) in self.cancel_requests

    def request_activity_cancel(self, run_id: str, seq: int) -> None:
        self.cancel_requests.add((run_id, seq))


class MemTransport:
    """The `Transport` port over in-memory queues; deliveries due later go at once.

    Messages are copied through their JSON encoding, as SQS would carry them. The caller
    drains `workflow` and `activity` and hands each message to the engine.
    """

    def __init__(self, clock: Any = None) -> None:
        self.clock = clock
        #: workflow-task messages, oldest first
        self.workflow: deque[wire.Message] = deque()
        #: activity tasks of every task queue, oldest first
        self.activity: deque[wire.ActivityTask] = deque()

    def send_workflow_task(self, msg: wire.Message) -> None:
        self.workflow.append(wire.decode_message(json.loads(json.dumps(msg.encode()))))

    def has_task_queue(self, task_queue: str) -> bool:
        return True

    def send_activity_task(self, task: wire.ActivityTask, delay: int = 0) -> None:
        """Queue an activity task; every task queue shares one queue and `delay` is ignored."""
        self.activity.append(wire.ActivityTask.decode(json.loads(json.dumps(task.encode()))))

    def deliver_at(self, due: float, envelope: wire.Envelope, key: str) -> None:
        """Deliver `envelope` now, whatever `due` says (no clock here)."""
        self.forward(envelope)

    def forward(self, envelope: wire.Envelope) -> None:
        if isinstance(envelope.msg, wire.ActivityTask):
            self.send_activity_task(envelope.msg)
        else:
            self.send_workflow_task(envelope.msg)

    def cancel_at(self, key: str) -> None:
        """Nothing is ever pending, so there is nothing to cancel."""

    def retry_soon(self, receipt_handle: str, seconds: int = 2) -> None:
        """No visibility timeouts here."""

    def requeue(self, queue_arn: str, bodies: list[str]) -> list[int]:
        """Queue the bodies again (workflow-task messages, activity tasks, due deliveries);
        none fails."""
        for body in bodies:
            data = json.loads(body)
            if "k" in data:
                self.send_workflow_task(wire.decode_message(data))
            elif "due" in data:
                self.forward(wire.Due.decode(data).envelope)
            else:
                self.send_activity_task(wire.ActivityTask.decode(data))
        return []

    def release(self, receipt_handles: list[str]) -> None:
        """Nothing is ever hidden here."""
