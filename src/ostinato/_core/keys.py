"""Every deterministic name the engine derives, in one place.

Message keys become SQS deduplication ids and the `consumed` keys of a history batch; timer
keys name Scheduler schedules; run ids of children and of continue-as-new are derived from
the parent run. Deriving them from `(run, sequence, attempt)` is what makes a redelivered or
retried send harmless: it names the same thing again. Keys keep their historical spelling so
messages and outboxes already in flight still match.
"""

from __future__ import annotations

import hashlib
import uuid

#: SQS deduplication ids: at most 128 characters of ASCII letters, digits and punctuation.
DEDUP_ID_LIMIT = 128
#: Scheduler names: at most 64 characters of [0-9A-Za-z_.-].
SCHEDULER_NAME_LIMIT = 64
#: Recurring schedules are named `sched-<name>`; one-time timers `ost-<hash>`.
SCHEDULE_PREFIX = "sched-"
TIMER_PREFIX = "ost-"

_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


# -- workflow-task message keys (the `mk` of a message) ------------------------------------------
def start(run_id: str) -> str:
    """The wake-up that starts a run."""
    return f"s:{run_id}"


def restart(run_id: str) -> str:
    """A second wake-up for a run that took its id over (terminate_existing)."""
    return f"s2:{run_id}"


def replaced(run_id: str) -> str:
    """The terminate sent to the run that `run_id` replaced."""
    return f"terminate:{run_id}"


def activity_result(run_id: str, seq: int) -> str:
    return f"a:{run_id}:{seq}"


def activity_timeout(run_id: str, seq: int) -> str:
    return f"ato:{run_id}:{seq}"


def activity_retry(run_id: str, seq: int, attempt: int) -> str:
    return f"ar:{run_id}:{seq}:{attempt}"


def timer(run_id: str, seq: int) -> str:
    return f"t:{run_id}:{seq}"


def workflow_timeout(run_id: str) -> str:
    return f"wto:{run_id}"


def task_retry(run_id: str, batch: int) -> str:
    """The wake-up after a failed workflow task (batch `batch` recorded it)."""
    return f"retry:{run_id}:{batch}"


def task_continue(run_id: str, batch: int) -> str:
    """The wake-up after a workflow task (batch `batch`) that left local activities for the
    next one: its budget was spent (`_engine.activities.LocalBudget`)."""
    return f"more:{run_id}:{batch}"


def local_retry(run_id: str, seq: int, attempt: int) -> str:
    return f"la:{run_id}:{seq}:{attempt}"


def callback_outcome(run_id: str, seq: int, nonce: str) -> str:
    return f"cb:{run_id}:{seq}:{nonce}"


def callback_timeout(run_id: str, seq: int) -> str:
    return f"cbt:{run_id}:{seq}"


def callback_heartbeat(nonce: str) -> str:
    return f"cbb:{nonce}"


def callback_heartbeat_check(run_id: str, seq: int, at: float) -> str:
    return f"cbh:{run_id}:{seq}:{at}"


def child_outcome(child_run_id: str) -> str:
    """The report of a child run's close to its parent."""
    return f"child:{child_run_id}"


def parent_cancel(child_run_id: str) -> str:
    """The parent stopped waiting for this child (its awaiting task was cancelled)."""
    return f"pcancel:{child_run_id}"


def parent_close(kind: str, child_run_id: str) -> str:
    """The parent closed: its close policy `kind` ("terminate" | "cancel") for this child."""
    return f"pclose:{kind}:{child_run_id}"


def request(kind: str, request_id: str) -> str:
    """A client request (signal, cancel, terminate) named by the caller's request id."""
    return f"{kind}:{request_id}"


def update(update_id: str) -> str:
    return f"u:{update_id}"


def forwarded(key: str, new_run_id: str) -> str:
    """A message for a run that continued as new, sent on to its successor."""
    return f"{key}>{new_run_id}"


# -- derived run ids ----------------------------------------------------------------------------
def child_run_id(parent_run_id: str, seq: int) -> str:
    """A child's run id: a replaying parent asks for the same child, never a second one."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"ostinato:{parent_run_id}:child:{seq}").hex


def continued_run_id(run_id: str) -> str:
    """The run that `run_id` continues as."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"ostinato:{run_id}:continue").hex


# -- names AWS sees -----------------------------------------------------------------------------
def dedup_id(key: str) -> str:
    """An SQS deduplication id for `key`: itself when short and plain ASCII, else its hash.

    `str.isalnum` would accept letters such as "é" that SQS refuses; only ASCII passes.
    """
    if len(key) <= DEDUP_ID_LIMIT and all(c in _PLAIN for c in key):
        return key
    return hashlib.sha256(key.encode()).hexdigest()


def timer_schedule(key: str) -> str:
    """The Scheduler schedule that delivers the timer `key` (a hash: any key fits)."""
    return TIMER_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:40]


def recurring_schedule(name: str) -> str:
    """The Scheduler schedule of the user's recurring schedule `name`."""
    return SCHEDULE_PREFIX + name


def firing_workflow_id(name: str, fire_time_utc: str) -> str:
    """The workflow id a firing of schedule `name` at `fire_time_utc` (YYYYMMDDTHHMMSSZ) starts."""
    return f"{name}-{fire_time_utc}"
