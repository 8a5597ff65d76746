"""`WorkflowHandle` and `WorkflowDescription`: one workflow id seen from the client."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._core import converter, keys, wire
from .._core import history as h
from .._core.errors import (
    ApplicationError,
    QueryRejectedError,
    UpdateRejectedError,
    WorkflowCancelledError,
    WorkflowClosedError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowTerminatedError,
    WorkflowTimedOutError,
)
from .._core.serde import encode_payload, from_failure
from .._engine.ports import Head

if TYPE_CHECKING:
    from .._core.replay import Replayer
    from .client import Client


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True)
class WorkflowDescription:
    """What describe and list show of a workflow's current run."""

    workflow_id: str
    run_id: str
    workflow_type: str
    status: str
    result: Any
    error: dict[str, Any] | None
    custom_status: Any
    start_time: datetime | None
    close_time: datetime | None
    task_failure: str | None = None

    @classmethod
    def from_head(cls, head: Head) -> WorkflowDescription:
        return cls(head.workflow_id, head.run_id, head.workflow_type, head.status, head.result,
                   head.failure, head.custom_status, _dt(head.start_time),
                   _dt(head.close_time), head.task_failure)

    def to_dict(self) -> dict[str, Any]:
        error = None
        if self.error:
            error = {k: v for k, v in self.error.items() if k != "stack"}
        return {"workflow_id": self.workflow_id, "run_id": self.run_id,
                "workflow_type": self.workflow_type, "status": self.status,
                "result": self.result, "error": error, "custom_status": self.custom_status,
                "start_time": self.start_time.isoformat() if self.start_time else None,
                "close_time": self.close_time.isoformat() if self.close_time else None}


class WorkflowHandle:
    """A workflow id (and run) to signal, query, wait for, describe, cancel or terminate."""

    def __init__(self, client: Client, workflow_id: str, run_id: str | None = None,
                 workflow: Any = None) -> None:
        self._client = client
        self.id = workflow_id
        self.run_id = run_id
        fn = None if workflow is None or isinstance(workflow, str) else workflow
        self._returns = converter.signature(fn, skip=1).returns

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.id!r}, run_id={self.run_id!r})"

    def _head(self) -> Head:
        head = self._client.store.get_head(self.id)
        if head is None:
            raise WorkflowNotFoundError(self.id)
        return head

    def current_run_id(self) -> str:
        return self.run_id or self._head().run_id

    def _open_head(self) -> Head:
        head = self._head()
        last = self._client.store.last_batch(head.run_id)
        status = last.state.get("status", h.Status.RUNNING) if last else head.status
        if status != h.Status.RUNNING:
            raise WorkflowClosedError(self.id, status)
        return head

    def signal(self, name: str, *args: Any, request_id: str | None = None) -> None:
        """Deliver signal `name` with `args`; raises `WorkflowClosedError` if closed.

        Give the same `request_id` when retrying a call whose outcome you did not see: the
        signal is then recorded once.
        """
        tree = encode_payload("signal arguments", list(args))
        rid = self._open_head().run_id
        key = keys.request(wire.Signal.KIND, request_id or uuid.uuid4().hex)
        self._client.transport.send_workflow_task(
            wire.Signal(self.id, rid, key, name=name, args=tree))

    def cancel(self, reason: str | None = None) -> None:
        """Request cooperative cancellation: CancelledError at the workflow's current await."""
        rid = self._open_head().run_id
        key = keys.request(wire.Cancel.KIND, uuid.uuid4().hex)
        self._client.transport.send_workflow_task(wire.Cancel(self.id, rid, key, reason=reason))

    def terminate(self, reason: str | None = None) -> None:
        """End the run now, without running any more workflow code."""
        rid = self._open_head().run_id
        key = keys.request(wire.Terminate.KIND, uuid.uuid4().hex)
        self._client.transport.send_workflow_task(
            wire.Terminate(self.id, rid, key, reason=reason))

    def update(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Send update `name`; return its handler's result once the workflow has run it.

        Raises `UpdateRejectedError` (validator refused it, unknown update, closed workflow:
        nothing is recorded) or the handler's error if it raised. Right after a start it
        waits for the first workflow task (bounded by `timeout`). The result is decoded by
        the handler's return annotation.
        """
        tree = encode_payload("update arguments", list(args))
        head = self._open_head()
        replayer = self._replay(head, timeout=timeout)
        replayer.instance.validate_update(name, tree)  # refuse before anything is sent
        handler = replayer.instance.update_handlers[name][0]
        return self._run_update(head.run_id, name, tree, timeout, handler)

    def _run_update(self, run_id: str, name: str, args: list[Any], timeout: float | None,
                    handler: Any = None) -> Any:
        """Send the update to `run_id` (the decider validates it again) and wait for it."""
        uid = uuid.uuid4().hex
        self._client.transport.send_workflow_task(
            wire.Update(self.id, run_id, keys.update(uid), update_id=uid, name=name,
                        args=args))
        outcome = self._client._wait_for(
            lambda: self._client.store.update_outcome(run_id, uid), timeout,
            f"update {name!r} of {self.id!r} not finished")
        if "rejected" in outcome:
            raise UpdateRejectedError(outcome["rejected"])
        if "failure" in outcome:
            raise from_failure(outcome["failure"])
        if handler is None and self._client.app is not None:  # update-with-start: no replay yet
            handler = self._replay(self._head(), run_id).instance.update_handlers.get(name)
        return converter.decode(outcome.get("result"), converter.signature(handler).returns,
                                f"result of update {name!r}")

    def _replay(self, head: Head, run_id: str | None = None,
                timeout: float | None = None) -> Replayer:
        """The run replayed from its history (for queries and update validation).

        Right after a start the run has no history yet: wait for its first workflow task
        (bounded by `timeout`), as a query or update sent then would in Temporal.
        """
        from .._core.replay import replay_history  # queries and updates only: not at cold start

        rid = run_id or head.run_id
        batches = self._client.store.load_batches(rid)
        if not batches:
            try:
                batches = self._client._wait_for(
                    lambda: self._client.store.load_batches(rid) or None, timeout,
                    f"workflow {self.id!r} has not run its first workflow task")
            except TimeoutError as exc:
                raise QueryRejectedError(str(exc)) from None
        app = self._client.app
        definition = app.workflow(head.workflow_type)
        try:
            return replay_history(definition, batches, app.activities)
        except Exception as exc:
            raise QueryRejectedError(f"cannot replay workflow {self.id!r}: {exc}") from exc

    def query(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Answer query `name` from the state replayed out of history.

        Right after a start, waits (up to `timeout` seconds) for the first workflow task.
        """
        head = self._head()
        instance = self._replay(head, self.run_id, timeout).instance
        answer = instance.query(name, encode_payload("query arguments", list(args)))
        handler = instance.query_handlers[name]
        try:
            return converter.decode(answer, converter.signature(handler).returns,
                                    f"result of query {name!r}")
        except ApplicationError as exc:
            raise QueryRejectedError(str(exc)) from exc

    def result(self, timeout: float | None = None, type: Any = None) -> Any:
        """Wait for the workflow to close; return its result or raise how it ended.

        A run that continued as new is followed to the run that finally closes. The result
        is decoded as `type`, else by the workflow function's return annotation when the
        handle knows the function (`start_workflow(fn, ...)`, `get_workflow_handle(id,
        workflow=fn)`), else it is plain JSON.
        """
        run_id = self.current_run_id()
        while True:
            state = self._client._wait_closed(run_id, timeout).state
            if state["status"] != h.Status.CONTINUED_AS_NEW:
                break
            run_id = state["new_run_id"]
        match state["status"]:
            case h.Status.COMPLETED:
                return converter.decode(state.get("result"), type or self._returns,
                                        f"result of workflow {self.id!r}")
            case h.Status.FAILED:
                failure = state.get("failure") or {}
                cause = from_failure(failure)
                raise WorkflowFailedError(f"workflow {self.id!r} failed: {cause}", cause)
            case h.Status.CANCELLED:
                raise WorkflowCancelledError(f"workflow {self.id!r} was cancelled")
            case h.Status.TERMINATED:
                reason = (state.get("failure") or {}).get("message")
                raise WorkflowTerminatedError(f"workflow {self.id!r} was terminated", reason)
            case h.Status.TIMED_OUT:
                raise WorkflowTimedOutError(f"workflow {self.id!r} timed out")
        raise RuntimeError(f"unexpected status {state['status']!r}")

    def describe(self) -> WorkflowDescription:
        return self._client.describe_head(self._head())

    def history(self) -> list[h.Event]:
        return list(self._client.store.iter_events(self.current_run_id()))
