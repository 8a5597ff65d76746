"""`Client`: start workflows, settle callbacks, list workflows and schedules.

The client is handed its ports (store, transport, scheduler, event bus); `_runtime` builds
the AWS ones. Without an App it still starts workflows by type name; queries and updates,
which replay the workflow code, need one.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from .._core import history as h
from .._core import keys, wire
from .._core.definitions import APP_ENV, App, NoAppError, load_app, type_name
from .._core.errors import (
    CallbackClosedError,
    CallbackNotFoundError,
    WorkflowAlreadyStartedError,
    WorkflowClosedError,
)
from .._core.index import HistoryIndex
from .._core.serde import encode_payload, to_failure
from .._engine.ports import EventBus, Head, Scheduler, StartConflict, Store, Transport
from .handle import WorkflowDescription, WorkflowHandle

if TYPE_CHECKING:
    from .schedules import RateSpec, ScheduleDescription

T = TypeVar("T")

ID_CONFLICT_POLICIES = ("fail", "use_existing", "terminate_existing")
ID_REUSE_POLICIES = ("allow_duplicate", "reject_duplicate")
#: Workflow ids become SQS FIFO message group ids and URL path segments.
WORKFLOW_ID = re.compile(r"[!-.0-~]{1,128}")
#: Run ids are uuid hex: `uuid4` for starts, `uuid5` for children and continuations.
RUN_ID = re.compile(r"[0-9a-f]{32}")
#: A history page holds about this much event JSON (a Lambda response is at most 6 MB).
HISTORY_PAGE_BYTES = 1_000_000

__all__ = ["Client", "WorkflowDescription", "WorkflowHandle"]


class Client:
    """Synchronous client of an ostinato stack (also what the HTTP API uses)."""

    def __init__(self, *, store: Store, transport: Transport, scheduler: Scheduler,
                 events: EventBus | None = None, app: App | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.transport = transport
        self.scheduler = scheduler
        self.events = events
        self._app = app
        self.clock = clock

    @property
    def app(self) -> App:
        """The App whose code queries and updates replay (loaded from OSTINATO_APP if unset)."""
        if self._app is None:
            spec = os.environ.get(APP_ENV)
            if not spec:
                raise NoAppError(f"this client has no App: pass Client(app=...) or set "
                                 f"{APP_ENV}=package.module:app (queries, updates and type "
                                 "checks replay or look up the workflow code)")
            self._app = load_app(spec)
        return self._app

    def _known_app(self) -> App | None:
        try:
            return self.app
        except NoAppError:
            return None

    def check_workflow_type(self, workflow_type: str) -> None:
        """`UnknownTypeError` unless the App (when there is one) registers `workflow_type`."""
        app = self._known_app()
        if app is not None:
            app.workflow(workflow_type)

    # -- starting -----------------------------------------------------------------------
    def start_workflow(self, workflow: Any, *args: Any, id: str | None = None,
                       id_conflict_policy: str = "fail", start_signal: str | None = None,
                       start_signal_args: list[Any] | None = None,
                       id_reuse_policy: str = "allow_duplicate") -> WorkflowHandle:
        """Start a workflow (function or type name) with `args`; return its handle.

        `id_conflict_policy`: "fail" raises `WorkflowAlreadyStartedError` when the id is
        running; "use_existing" returns the running one's handle; "terminate_existing"
        terminates it and starts anew. With `start_signal`, the signal is delivered to the new
        (or existing) run: signal-with-start. `id_reuse_policy="reject_duplicate"` refuses an
        id that ever had a run, even a closed one (`WorkflowAlreadyStartedError`): how
        triggers start a workflow once per event.
        """
        if id_reuse_policy not in ID_REUSE_POLICIES:
            raise ValueError(f"id_reuse_policy must be one of {ID_REUSE_POLICIES}")
        if id_conflict_policy not in ID_CONFLICT_POLICIES:
            raise ValueError(f"id_conflict_policy must be one of {ID_CONFLICT_POLICIES}")
        workflow_type = type_name(workflow, "workflow")
        self.check_workflow_type(workflow_type)  # unknown types are refused before any send
        tree = encode_payload("workflow arguments", list(args))
        if start_signal is not None:
            encode_payload("signal arguments", list(start_signal_args or []))
        if id is not None and not WORKFLOW_ID.fullmatch(id):
            raise ValueError(f"workflow id {id!r}: use 1-128 printable ASCII characters "
                             "without '/' or spaces (it is an SQS message group id)")
        wid = id or str(uuid.uuid4())
        rid = uuid.uuid4().hex
        # The wake-up goes first: a run that exists always has one on its way (see _engine).
        self.transport.send_workflow_task(wire.Start(wid, rid, keys.start(rid)))
        head = Head(wid, rid, workflow_type, h.Status.RUNNING, self.clock(), tree)
        try:
            self.store.create_head(head, only_new=id_reuse_policy == "reject_duplicate")
        except StartConflict as conflict:
            rid = self._on_conflict(conflict, head, id_conflict_policy)
        handle = WorkflowHandle(self, wid, rid, workflow=workflow)
        if start_signal is not None:
            handle.signal(start_signal, *(start_signal_args or []))
        return handle

    def _on_conflict(self, conflict: StartConflict, head: Head, policy: str) -> str:
        """The run id the start ends with when the id is taken (or raise)."""
        existing, wid, rid = conflict.head, head.workflow_id, head.run_id
        if existing is None:
            raise WorkflowAlreadyStartedError(wid) from None
        if existing.status != h.Status.RUNNING:  # only reject_duplicate refuses a closed id
            raise WorkflowAlreadyStartedError(wid, existing.run_id) from None
        if policy == "use_existing":
            return existing.run_id
        if policy == "terminate_existing":
            self.store.create_head(head, replacing=existing.run_id)
            # the first wake-up may have been judged an orphan before the take-over
            self.transport.send_workflow_task(wire.Start(wid, rid, keys.restart(rid)))
            self.transport.send_workflow_task(wire.Terminate(
                wid, existing.run_id, keys.replaced(rid),
                reason=f"replaced by run {rid} (id_conflict_policy=terminate_existing)"))
            return rid
        raise WorkflowAlreadyStartedError(wid, existing.run_id) from None

    def update_with_start(self, workflow: Any, *args: Any, id: str, update: str,
                          update_args: list[Any] | None = None,
                          id_conflict_policy: str = "use_existing",
                          timeout: float | None = None) -> tuple[WorkflowHandle, Any]:
        """Start the workflow (or, per `id_conflict_policy`, attach to the running one) and
        run update `update` on it; returns (handle, the update's result), as Temporal's
        update-with-start. The update follows the start on the workflow's queue, so a new
        run accepts (and validates) it in its first workflow task. A rejected update raises
        `UpdateRejectedError`; the workflow stays started.
        """
        tree = encode_payload("update arguments", list(update_args or []))
        handle = self.start_workflow(workflow, *args, id=id,
                                     id_conflict_policy=id_conflict_policy)
        assert handle.run_id is not None
        return handle, handle._run_update(handle.run_id, update, tree, timeout)

    def get_workflow_handle(self, workflow_id: str, run_id: str | None = None,
                            workflow: Any = None) -> WorkflowHandle:
        """A handle on `workflow_id` (its latest run unless `run_id`). With `workflow` (the
        function), `result()` decodes by its return annotation."""
        return WorkflowHandle(self, workflow_id, run_id, workflow=workflow)

    # -- external completion ------------------------------------------------------------
    def complete_callback(self, token: str, result: Any = None) -> None:
        """Complete the callback `token` with `result` (once: a second one is refused)."""
        tree = encode_payload("callback result", result)
        self._settle_callback(token, {"result": tree})

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
        failure = encode_payload("callback error", failure)
        self._settle_callback(token, {"failure": failure})

    def heartbeat_callback(self, token: str) -> None:
        """Tell the workflow the callback's holder is alive (extends its heartbeat timeout)."""
        wid, rid, seq = self._find_callback(token)
        self.transport.send_workflow_task(wire.CallbackHeartbeat(
            wid, rid, keys.callback_heartbeat(uuid.uuid4().hex), seq=seq))

    def _settle_callback(self, token: str, outcome: dict[str, Any]) -> None:
        wid, rid, seq = self._find_callback(token)
        # The wake-up goes first (as for starts): a recorded outcome always has one on its way.
        self.transport.send_workflow_task(wire.CallbackSettled(
            wid, rid, keys.callback_outcome(rid, seq, uuid.uuid4().hex), seq=seq,
            sent_at=self.clock()))
        if self.store.claim_callback(rid, seq, outcome) != outcome:
            raise CallbackClosedError(f"callback {seq} of workflow {wid!r} is already settled")

    def _find_callback(self, token: str) -> tuple[str, str, int]:
        """Check the token against history; (workflow id, run id, seq) of an open callback."""
        try:
            where, secret = token.rsplit(".", 1)
            wid, rid, seq = json.loads(base64.urlsafe_b64decode(where + "=" * (-len(where) % 4)))
            if not (isinstance(wid, str) and isinstance(rid, str) and isinstance(seq, int)
                    and RUN_ID.fullmatch(rid)):  # never a made-up key for the store to refuse
                raise ValueError(token)
        except (ValueError, TypeError, binascii.Error):
            raise CallbackNotFoundError("malformed callback token") from None
        batches = self.store.load_batches(rid)
        index = HistoryIndex.of(batches)
        known = index.callback_secrets.get(seq)
        if known is None or not hmac.compare_digest(known, secret):
            raise CallbackNotFoundError("no callback with this token")
        if seq not in index.callbacks or self.store.callback_claim(rid, seq) is not None:
            raise CallbackClosedError(f"callback {seq} of workflow {wid!r} is already settled")
        status = batches[-1].state.get("status", h.Status.RUNNING)
        if status != h.Status.RUNNING:
            raise WorkflowClosedError(wid, status)
        return wid, rid, seq

    # -- reading ------------------------------------------------------------------------
    def list_workflows(self, status: str | None = None, workflow_type: str | None = None,
                       page_size: int = 100, started_after: datetime | None = None,
                       started_before: datetime | None = None,
                       ) -> Iterator[WorkflowDescription]:
        """Workflows (their current runs), newest first, filtered by status, type and start
        time (`started_after <= start <= started_before`, aware datetimes)."""
        start_key: dict[str, Any] | None = None
        while True:
            page, start_key = self.list_page(status, workflow_type, page_size, start_key,
                                             started_after, started_before)
            yield from page
            if not start_key:
                return

    def list_page(self, status: str | None, workflow_type: str | None, limit: int,
                  start_key: dict[str, Any] | None = None,
                  started_after: datetime | None = None, started_before: datetime | None = None,
                  ) -> tuple[list[WorkflowDescription], dict[str, Any] | None]:
        """One page of `list_workflows`, and the key the next page starts after
        (`InvalidPageTokenError` for a key this listing did not hand out)."""
        heads, last_key = self.store.list_heads(
            status, workflow_type, limit, start_key,
            None if started_after is None else started_after.timestamp(),
            None if started_before is None else started_before.timestamp())
        return [self.describe_head(head) for head in heads], last_key

    def describe_head(self, head: Head) -> WorkflowDescription:
        """A head as describe shows it; a result too large for the head comes from history."""
        if head.result_spilled:
            last = self.store.last_batch(head.run_id)
            if last is not None:
                head = dataclasses.replace(head, result=last.state.get("result"))
        return WorkflowDescription.from_head(head)

    def history_page(self, workflow_id: str, run_id: str | None = None, after: int = 0,
                     max_bytes: int | None = None,
                     ) -> tuple[str, list[h.Batch], int | None]:
        """(run id, the batches after batch `after` holding about `max_bytes` of events,
        the `after` of the next page or None at the end): history in pages that fit a
        response, however long the run."""
        rid = run_id or self.get_workflow_handle(workflow_id).current_run_id()
        budget = HISTORY_PAGE_BYTES if max_bytes is None else max_bytes
        batches, more = self.store.history_page(rid, after, budget)
        return rid, batches, batches[-1].number if more and batches else None

    # -- schedules (EventBridge Scheduler; see schedules) ---------------------------------
    def create_schedule(self, name: str, workflow: Any, *args: Any, cron: str | None = None,
                        rate: RateSpec | None = None, overlap: str = "skip",
                        timezone: str = "UTC") -> ScheduleDescription:
        """Start `workflow(*args)` at every firing of `cron` ("0 3 * * ? *") or `rate`
        ("5 minutes"), each firing once, as `<name>-<fire time>`; `overlap="skip"` starts
        nothing while the previous run is RUNNING, "allow_all" starts every firing."""
        from . import schedules  # cron and schedules load only where schedules are used

        return schedules.create_schedule(self, name, workflow, *args, cron=cron, rate=rate,
                                         overlap=overlap, timezone=timezone)

    def list_schedules(self) -> list[ScheduleDescription]:
        """Every schedule, by name, with its next and last firing."""
        from . import schedules

        return schedules.list_schedules(self)

    def delete_schedule(self, name: str) -> None:
        """Stop the schedule's firings (runs already started go on)."""
        from . import schedules

        schedules.delete_schedule(self, name)

    # -- events -------------------------------------------------------------------------
    def put_events(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Publish events to the bus (EventBridge PutEvents); triggers may start workflows."""
        if self.events is None:
            raise RuntimeError("this client has no event bus")
        return self.events.put_events(entries)

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
            if last is not None and last.state.get("status", h.Status.RUNNING) != h.Status.RUNNING:
                return last
            return None

        return self._wait_for(closed, timeout, f"run {run_id} still running")
