"""The invariants of DESIGN §3, checked over what a backend holds after a schedule.

Each check returns violations (strings naming the workflow, the run and what is wrong) rather
than asserting, so a simulation can count them and print the seed that broke them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..._core import history as h
from ..._core import keys
from ..._engine.ports import Store
from .workload import Plan

CLOSE_EVENTS = set(h.CLOSING)
#: A plan's outcome when nothing interrupts it, and what an interruption may give instead.
ENDINGS = {"complete": {h.Status.COMPLETED}, "cancel": {h.Status.COMPLETED, h.Status.CANCELLED},
           "terminate": {h.Status.COMPLETED, h.Status.TERMINATED}}


def history_problems(events: list[h.Event]) -> list[str]:
    """What is wrong with one run's history: ids not contiguous, a start that is not first,
    an activity or timer recorded twice, more than one close, events after the close."""
    problems = []
    ids = [e.event_id for e in events]
    if ids != list(range(1, len(ids) + 1)):
        problems.append(f"event ids not contiguous: {ids}")
    if not events or events[0].event_type != h.STARTED:
        problems.append("the first event is not WorkflowExecutionStarted")
    kinds: Counter[tuple[str, Any]] = Counter()
    for e in events:
        seq = e.attributes.get("seq")
        match e.event_type:
            case "ActivityTaskScheduled":
                kinds["scheduled", seq] += 1
            case ("ActivityTaskCompleted" | "ActivityTaskFailed" | "ActivityTaskTimedOut"
                  | "ActivityTaskCanceled"):
                kinds["activity outcome", seq] += 1
            case "TimerStarted":
                kinds["timer", seq] += 1
            case "TimerFired" | "TimerCanceled":
                kinds["timer end", seq] += 1
            case h.UPDATE_COMPLETED:
                kinds["update outcome", e.attributes.get("update_id")] += 1
    duplicated = {k: n for k, n in kinds.items() if n > 1}
    if duplicated:
        problems.append(f"duplicated history events: {duplicated}")
    closing = [e for e in events if e.event_type in CLOSE_EVENTS]
    if len(closing) > 1:
        problems.append(f"closed {len(closing)} times")
    if closing and closing[0] is not events[-1]:
        problems.append("events after the closing event")
    return problems


def runs(store: Store, first_run: str) -> list[tuple[str, list[h.Event]]]:
    """The chain of runs from `first_run`, following continue-as-new."""
    chain: list[tuple[str, list[h.Event]]] = []
    rid: str | None = first_run
    while rid is not None and len(chain) < 100:
        events = list(store.iter_events(rid))
        chain.append((rid, events))
        last = events[-1] if events else None
        rid = (keys.continued_run_id(rid)
               if last is not None and last.event_type == h.CONTINUED_AS_NEW else None)
    return chain


def check_plan(store: Store, plan: Plan, first_run: str,
               updates: Iterable[tuple[str, int]] = ()) -> list[str]:
    """Every invariant one workload workflow must keep once the schedule has run out."""
    where = f"{plan.wid}"
    problems = []
    chain = runs(store, first_run)
    for rid, events in chain:
        problems += [f"{where} run {rid}: {p}" for p in history_problems(events)]
    rid, events = chain[-1]
    close = events[-1] if events and events[-1].event_type in CLOSE_EVENTS else None
    if close is None:
        return [*problems, f"{where} run {rid}: still open, nothing left to move it (stranded)"]
    status = h.CLOSING[close.event_type]
    if status not in ENDINGS[plan.ending]:
        problems.append(f"{where}: ended {status}, a {plan.ending} plan may end only "
                        f"{sorted(ENDINGS[plan.ending])} ({close.attributes})")
    if status == h.Status.COMPLETED and close.attributes.get("result") != plan.result:
        problems.append(f"{where}: result {close.attributes.get('result')!r}, "
                        f"expected {plan.result!r}")
    head = store.get_head(plan.wid)
    if head is None or head.run_id != rid or head.status != status:
        seen = (head.run_id, head.status) if head else None
        problems.append(f"{where}: projection not converged: head {seen}, history {rid} "
                        f"{status}")
    for uid, value in updates:
        outcome = store.update_outcome(rid, uid) or _outcome_in(chain, uid)
        if status == h.Status.COMPLETED and outcome != {"result": value * 2}:
            problems.append(f"{where}: update {uid} ({value}) outcome {outcome!r}")
    return problems


def _outcome_in(chain: list[tuple[str, list[h.Event]]], uid: str) -> dict[str, Any] | None:
    for _, events in chain:
        for e in events:
            if e.event_type == h.UPDATE_COMPLETED and e.attributes.get("update_id") == uid:
                return {k: v for k, v in e.attributes.items() if k in ("result", "failure")}
    return None


def check_closed(store: Store, workflow_ids: Iterable[str]) -> list[str]:
    """Workflows outside the plans (children, triggered runs): sound and closed."""
    problems = []
    for wid in workflow_ids:
        head = store.get_head(wid)
        if head is None:
            problems.append(f"{wid}: never started")
            continue
        events = list(store.iter_events(head.run_id))
        problems += [f"{wid}: {p}" for p in history_problems(events)]
        if not events or events[-1].event_type not in CLOSE_EVENTS:
            problems.append(f"{wid}: still open, nothing left to move it (stranded)")
    return problems


def first_run(store: Store, workflow_id: str) -> str | None:
    """The run that started `workflow_id`'s current chain, following continue-as-new back
    from its head (None: it never started)."""
    head = store.get_head(workflow_id)
    rid = None if head is None else head.run_id
    for _ in range(100):
        if rid is None:
            return None
        start = next(iter(store.iter_events(rid)), None)
        previous = None if start is None else start.attributes.get("continued_from")
        if previous is None:
            return rid
        rid = previous
    return rid


def check_starts(store: Store) -> list[str]:
    """No workflow id was started twice: every run that does not continue another is its id's
    only one, however often the start was requested or delivered (DESIGN §2 Triggers: exactly
    once). Needs the memory table, whose runs it reads (elsewhere: nothing to check)."""
    runs_of = getattr(store, "_runs", None)
    if runs_of is None:
        return []
    starts: dict[str, list[str]] = {}
    for rid in sorted(runs_of):
        start = next(iter(store.iter_events(rid)), None)
        if start is None or start.event_type != h.STARTED:
            continue
        if start.attributes.get("continued_from") is None:
            starts.setdefault(start.attributes.get("workflow_id", "?"), []).append(rid)
    return [f"{wid}: started {len(rids)} times (runs {', '.join(rids)})"
            for wid, rids in sorted(starts.items()) if len(rids) > 1]


def check_index(store: Store) -> list[str]:
    """The list indexes converged on the heads: listing every workflow, and listing by each
    status, shows each current head exactly once, as it is (pages of 7, so the per-shard
    paging is exercised too). Needs the memory table, whose heads it reads."""
    heads = getattr(store, "_heads", None)
    if heads is None:
        return []
    truth = {wid: item.status for wid, item in heads.items()}

    def listed(status: str | None) -> list[tuple[str, str]]:
        found, start = [], None
        while True:
            page, start = store.list_heads(status=status, limit=7, start_key=start)
            found += [(head.workflow_id, str(head.status)) for head in page]
            if not start:
                return found

    problems = []
    everything = listed(None)
    if sorted(everything) != sorted(truth.items()):
        problems.append(f"index not converged: lists {len(everything)} heads "
                        f"({len(set(everything) ^ set(truth.items()))} differ from the table)")
    for status in sorted(set(truth.values())):
        ids = sorted(wid for wid, _ in listed(status))
        if ids != sorted(w for w, s in truth.items() if s == status):
            problems.append(f"index not converged for status {status}")
    return problems
