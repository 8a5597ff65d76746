"""`Client` and `WorkflowHandle`: start, signal, query, wait for, describe and list workflows."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from .._aws.settings import Settings
from .._aws.store import Head, StartConflict, Store
from .._aws.transport import Transport
from .._core import history as h
from .._core.definitions import App, load_app, type_name
from .._core.errors import (
    CallbackClosedError,
    CallbackNotFoundError,
    QueryRejectedError,
    UpdateRejectedError,
    WorkflowAlreadyStartedError,
    WorkflowCancelledError,
    WorkflowClosedError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowTerminatedError,
    WorkflowTimedOutError,
)
from .._core.replay import replay_history
from .._core.serde import check_payload, from_failure, to_failure
from .schedules import RateSpec, ScheduleDescription

T = TypeVar("T")

ID_CONFLICT_POLICIES = ("fail", "use_existing", "terminate_existing")
#: Workflow ids become SQS FIFO message group ids and URL path segments.
WORKFLOW_ID = re.compile(r"[!-.0-~]{1,128}")


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


class Client:
    """Synchronous client of an ostinato stack (also what the HTTP API uses)."""

    def __init__(self, settings: Settings | None = None, *, app: App | None = None,
                 store: Store | None = None, transport: Transport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or Settings.from_env()
        self.store = store or Store(self.settings.table_name, self.settings.region)
        self.transport = transport or Transport(self.settings, clock=clock)
        self._app = app
        self.clock = clock

    @classmethod
    def from_env(cls) -> Client:
        """A client for the stack named by the OSTINATO_* environment variables."""
        return cls(Settings.from_env())

    @property
    def app(self) -> App:
        if self._app is None:
            import os

            self._app = load_app(os.environ["OSTINATO_APP"])
        return self._app

    # -- starting -----------------------------------------------------------------------
    def start_workflow(self, workflow: Any, *args: Any, id: str | None = None,
                       id_conflict_policy: str = "fail", start_signal: str | None = None,
                       start_signal_args: list[Any] | None = None,
                       id_reuse_policy: str = "allow_duplicate") -> WorkflowHandle:
        """Start a workflow (function or type name) with `args`; return its handle.

        `id_conflict_policy`: "fail" raises `WorkflowAlreadyStartedError` when the id is
        running; "use_existing" returns the running one's handle. With `start_signal`, the
        signal is delivered to the new (or existing) run: signal-with-start.
        `id_reuse_policy="reject_duplicate"` refuses an id that ever had a run, even a closed
        one (`WorkflowAlreadyStartedError`): how triggers start a workflow once per event.
        """
        if id_reuse_policy not in ("allow_duplicate", "reject_duplicate"):
            raise ValueError("id_reuse_policy must be 'allow_duplicate' or 'reject_duplicate'")
        if id_conflict_policy not in ID_CONFLICT_POLICIES:
            raise ValueError(f"id_conflict_policy must be one of {ID_CONFLICT_POLICIES}")
        workflow_type = type_name(workflow, "workflow")
        self.app.workflow(workflow_type)  # unknown types are refused before anything is sent
        check_payload("workflow arguments", list(args))
        if start_signal is not None:
            check_payload("signal arguments", list(start_signal_args or []))
        if id is not None and not WORKFLOW_ID.fullmatch(id):
            raise ValueError(f"workflow id {id!r}: use 1-128 printable ASCII characters "
                             "without '/' or spaces (it is an SQS message group id)")
        wid = id or str(uuid.uuid4())
        rid = uuid.uuid4().hex
        # The wake-up goes first: a run that exists always has one on its way (see _engine).
        self.transport.send_workflow_task({"k": "start", "wid": wid, "rid": rid,
                                           "mk": f"s:{rid}"})
        head = Head(wid, rid, workflow_type, h.RUNNING, self.clock(), list(args))
        try:
            self.store.create_head(head, only_new=id_reuse_policy == "reject_duplicate")
        except StartConflict as conflict:
            existing = conflict.head
            if existing is None:
                raise WorkflowAlreadyStartedError(wid) from None
            if existing.status != h.RUNNING:  # only reject_duplicate refuses a closed id
                raise WorkflowAlreadyStartedError(wid, existing.run_id) from None
            if id_conflict_policy == "use_existing":
                rid = existing.run_id
            elif id_conflict_policy == "terminate_existing":
                self.store.create_head(head, replacing=existing.run_id)
                # the first wake-up may have been judged an orphan before the take-over
                self.transport.send_workflow_task({"k": "start", "wid": wid, "rid": rid,
                                                   "mk": f"s2:{rid}"})
                self.transport.send_workflow_task({
                    "k": "terminate", "wid": wid, "rid": existing.run_id,
                    "reason": f"replaced by run {rid} (id_conflict_policy=terminate_existing)",
                    "mk": f"terminate:{rid}"})
            else:
                raise WorkflowAlreadyStartedError(wid, existing.run_id) from None
        handle = WorkflowHandle(self, wid, rid)
        if start_signal is not None:
            handle.signal(start_signal, *(start_signal_args or []))
        return handle

    def get_workflow_handle(self, workflow_id: str, run_id: str | None = None) -> WorkflowHandle:
        return WorkflowHandle(self, workflow_id, run_id)

    # -- external completion ------------------------------------------------------------
    def complete_callback(self, token: str, result: Any = None) -> None:
        """Complete the callback `token` with `result` (once: a second one is refused)."""
        check_payload("callback result", result)
        self._settle_callback(token, {"result": result})

    def fail_callback(self, token: str, error: Any) -> None:
        """Fail the callback `token`; the workflow's `await cb` raises `CallbackError`."""
        if isinstance(error, BaseException):
            failure = to_failure(error)
        elif isinstance(error, dict):
            failure = {"kind": "application", "type": error.get("type") or "CallbackFailure",
                       "message": str(error.get("message", "")), "non_retryable": True,
                       "details": error.get("details")}
        else:
            failure = {"kind": "application", "type": "CallbackFailure", "message": str(error),
                       "non_retryable": True}
        failure.pop("stack", None)
        check_payload("callback error", failure)
        self._settle_callback(token, {"failure": failure})

    def heartbeat_callback(self, token: str) -> None:
        """Tell the workflow the callback's holder is alive (extends its heartbeat timeout)."""
        wid, rid, seq = self._find_callback(token)
        self.transport.send_workflow_task({"k": "callback_heartbeat", "wid": wid, "rid": rid,
                                           "seq": seq, "mk": f"cbb:{uuid.uuid4().hex}"})

    def _settle_callback(self, token: str, outcome: dict[str, Any]) -> None:
        wid, rid, seq = self._find_callback(token)
        # The wake-up goes first (as for starts): a recorded outcome always has one on its way.
        self.transport.send_workflow_task({"k": "callback", "wid": wid, "rid": rid, "seq": seq,
                                           "at": self.clock(),
                                           "mk": f"cb:{rid}:{seq}:{uuid.uuid4().hex}"})
        if self.store.claim_callback(rid, seq, outcome) != outcome:
            raise CallbackClosedError(f"callback {seq} of workflow {wid!r} is already settled")

    def _find_callback(self, token: str) -> tuple[str, str, int]:
        """Check the token against history; (workflow id, run id, seq) of an open callback."""
        try:
            where, secret = token.rsplit(".", 1)
            wid, rid, seq = json.loads(base64.urlsafe_b64decode(where + "=" * (-len(where) % 4)))
            if not (isinstance(wid, str) and isinstance(rid, str) and isinstance(seq, int)):
                raise ValueError(token)
        except (ValueError, TypeError, binascii.Error):
            raise CallbackNotFoundError("malformed callback token") from None
        created = None
        settled = False
        batches = self.store.load_batches(rid)
        for batch in batches:
            for etype, attrs in batch.events:
                if attrs.get("seq") != seq:
                    continue
                if etype == h.CALLBACK_CREATED:
                    created = attrs
                elif etype in (h.CALLBACK_COMPLETED, h.CALLBACK_FAILED, h.CALLBACK_TIMED_OUT):
                    settled = True
        if created is None or not hmac.compare_digest(created["secret"], secret):
            raise CallbackNotFoundError("no callback with this token")
        if settled or self.store.callback_claim(rid, seq) is not None:
            raise CallbackClosedError(f"callback {seq} of workflow {wid!r} is already settled")
        if batches[-1].state.get("status", h.RUNNING) != h.RUNNING:
            raise WorkflowClosedError(wid, batches[-1].state["status"])
        return wid, rid, seq

    # -- listing ------------------------------------------------------------------------
    def list_workflows(self, status: str | None = None, workflow_type: str | None = None,
                       page_size: int = 100) -> Iterator[WorkflowDescription]:
        """Workflows (their current runs), newest first, filtered by status and/or type."""
        start_key: dict[str, Any] | None = None
        while True:
            heads, start_key = self.store.list_heads(status, workflow_type, page_size, start_key)
            for head in heads:
                yield WorkflowDescription.from_head(head)
            if not start_key:
                return

    # -- schedules (EventBridge Scheduler; see _schedules) --------------------------------
    def create_schedule(self, name: str, workflow: Any, *args: Any, cron: str | None = None,
                        rate: RateSpec | None = None, overlap: str = "skip",
                        timezone: str = "UTC") -> ScheduleDescription:
        """Start `workflow(*args)` at every firing of `cron` ("0 3 * * ? *") or `rate`
        ("5 minutes"), each firing once, as `<name>-<fire time>`; `overlap="skip"` starts
        nothing while the previous run is RUNNING, "allow_all" starts every firing."""
        from .schedules import create_schedule

        return create_schedule(self, name, workflow, *args, cron=cron, rate=rate,
                               overlap=overlap, timezone=timezone)

    def list_schedules(self) -> list[ScheduleDescription]:
        """Every schedule, by name, with its next and last firing."""
        from .schedules import list_schedules

        return list_schedules(self)

    def delete_schedule(self, name: str) -> None:
        """Stop the schedule's firings (runs already started go on)."""
        from .schedules import delete_schedule

        delete_schedule(self, name)

    # -- waiting (the test environment drives the engine here instead) -------------------
    def _wait_for(self, check: Callable[[], T | None], timeout: float | None, what: str) -> T:
        """Poll `check` until it returns something (the test environment drives instead)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.02
        while True:
            found = check()
            if found is not None:
                return found
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{what} after {timeout}s")
            time.sleep(pause)
            pause = min(pause * 1.5, 1.0)

    def _wait_closed(self, run_id: str, timeout: float | None) -> h.Batch:
        def closed() -> h.Batch | None:
            last = self.store.last_batch(run_id)
            if last is not None and last.state.get("status", h.RUNNING) != h.RUNNING:
                return last
            return None

        return self._wait_for(closed, timeout, f"run {run_id} still running")


class WorkflowHandle:
    """A workflow id (and run) to signal, query, wait for, describe, cancel or terminate."""

    def __init__(self, client: Client, workflow_id: str, run_id: str | None = None) -> None:
        self._client = client
        self.id = workflow_id
        self.run_id = run_id

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
        status = last.state.get("status", h.RUNNING) if last else head.status
        if status != h.RUNNING:
            raise WorkflowClosedError(self.id, status)
        return head

    def _send(self, msg: dict[str, Any], request_id: str | None = None) -> None:
        head = self._open_head()
        key = request_id or uuid.uuid4().hex
        self._client.transport.send_workflow_task(
            {**msg, "wid": self.id, "rid": head.run_id, "mk": f"{msg['k']}:{key}"})

    def signal(self, name: str, *args: Any, request_id: str | None = None) -> None:
        """Deliver signal `name` with `args`; raises `WorkflowClosedError` if closed.

        Give the same `request_id` when retrying a call whose outcome you did not see: the
        signal is then recorded once.
        """
        check_payload("signal arguments", list(args))
        self._send({"k": "signal", "name": name, "args": list(args)}, request_id)

    def cancel(self, reason: str | None = None) -> None:
        """Request cooperative cancellation: CancelledError at the workflow's current await."""
        self._send({"k": "cancel", "reason": reason})

    def terminate(self, reason: str | None = None) -> None:
        """End the run now, without running any more workflow code."""
        self._send({"k": "terminate", "reason": reason})

    def update(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Send update `name`; return its handler's result once the workflow has run it.

        Raises `UpdateRejectedError` (validator refused it, unknown update, closed workflow:
        nothing is recorded) or the handler's error if it raised.
        """
        check_payload("update arguments", list(args))
        head = self._open_head()
        replayer = self._replay(head)
        replayer.instance.validate_update(name, list(args))  # refuse before anything is sent
        uid = uuid.uuid4().hex
        self._client.transport.send_workflow_task(
            {"k": "update", "wid": self.id, "rid": head.run_id, "uid": uid, "name": name,
             "args": list(args), "mk": f"u:{uid}"})
        outcome = self._client._wait_for(
            lambda: self._client.store.update_outcome(head.run_id, uid), timeout,
            f"update {name!r} of {self.id!r} not finished")
        if "rejected" in outcome:
            raise UpdateRejectedError(outcome["rejected"])
        if "failure" in outcome:
            raise from_failure(outcome["failure"])
        return outcome.get("result")

    def _replay(self, head: Head, run_id: str | None = None) -> Any:
        """The run replayed from its history (for queries and update validation)."""
        batches = self._client.store.load_batches(run_id or head.run_id)
        if not batches:
            raise QueryRejectedError(f"workflow {self.id!r} has not started running yet")
        definition = self._client.app.workflow(head.workflow_type)
        try:
            return replay_history(definition, batches, self._client.app.activities)
        except Exception as exc:
            raise QueryRejectedError(f"cannot replay workflow {self.id!r}: {exc}") from exc

    def query(self, name: str, *args: Any) -> Any:
        """Answer query `name` from the state replayed out of history."""
        head = self._head()
        return self._replay(head, self.run_id).query(name, list(args))

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the workflow to close; return its result or raise how it ended.

        A run that continued as new is followed to the run that finally closes.
        """
        run_id = self.current_run_id()
        while True:
            state = self._client._wait_closed(run_id, timeout).state
            if state["status"] != "CONTINUED_AS_NEW":
                break
            run_id = state["new_run_id"]
        match state["status"]:
            case "COMPLETED":
                return state.get("result")
            case "FAILED":
                failure = state.get("failure") or {}
                cause = from_failure(failure)
                raise WorkflowFailedError(f"workflow {self.id!r} failed: {cause}", cause)
            case "CANCELLED":
                raise WorkflowCancelledError(f"workflow {self.id!r} was cancelled")
            case "TERMINATED":
                reason = (state.get("failure") or {}).get("message")
                raise WorkflowTerminatedError(f"workflow {self.id!r} was terminated", reason)
            case "TIMED_OUT":
                raise WorkflowTimedOutError(f"workflow {self.id!r} timed out")
        raise RuntimeError(f"unexpected status {state['status']!r}")

    def describe(self) -> WorkflowDescription:
        return WorkflowDescription.from_head(self._head())

    def history(self) -> list[h.Event]:
        return list(self._client.store.iter_events(self.current_run_id()))
