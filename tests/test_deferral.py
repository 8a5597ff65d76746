"""Deferred workflow-task messages back off, and outlive the orphan grace before any DLQ."""

from __future__ import annotations

import itertools
from pathlib import Path

from ostinato._core import keys, wire
from ostinato._engine.deferral import MAX_DEFERRAL, ORPHAN_GRACE, deferral_delay
from ostinato._local.template import load_template
from tests.apps import mixed

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


def max_receive_count(queue: str) -> int:
    props = load_template(TEMPLATE)["Resources"][queue]["Properties"]
    return int(props["RedrivePolicy"]["maxReceiveCount"])


def test_delays_double_from_two_seconds_up_to_the_cap():
    assert [deferral_delay(k) for k in range(1, 9)] == [2, 4, 8, 16, 30, 30, 30, 30]
    assert deferral_delay(0) == 2 and deferral_delay(10_000) == MAX_DEFERRAL


def test_deferral_window_before_the_dlq_exceeds_the_orphan_grace_with_margin():
    """Receive k comes at least sum(delays of receives 1..k-1) after the first; the last
    receive before the DLQ is receive number maxReceiveCount."""
    limit = max_receive_count("WorkflowTaskQueue")
    arrivals = [0, *itertools.accumulate(deferral_delay(k) for k in range(1, limit))]
    assert len(arrivals) == limit
    window = arrivals[-1]
    assert window >= 2 * ORPHAN_GRACE, f"only {window}s of deferrals before the DLQ"
    # receives that come after the grace has passed: each one can drop the orphan
    after_grace = [t for t in arrivals if t > ORPHAN_GRACE]
    assert len(after_grace) >= 3, arrivals
    # and the cap keeps a waiting FIFO group from stalling for long
    assert max(deferral_delay(k) for k in range(1, limit)) <= ORPHAN_GRACE / 2


def test_an_orphan_wake_up_is_dropped_after_the_grace_not_dead_lettered(make_env):
    """A start message for a run that is never written (the client died between its two
    calls) is deferred with back-off until it is older than the grace, then dropped."""
    env = make_env(mixed.app)
    deferred: list[int] = []
    transport = env.runtime.transport
    original = transport.retry_soon

    def spy(receipt: str, seconds: int = 2) -> None:
        deferred.append(seconds)
        original(receipt, seconds)

    transport.retry_soon = spy
    transport.send_workflow_task(wire.Start("ghost", "r0", keys.start("r0")))

    env.sleep(300)

    assert deferred[:5] == [2, 4, 8, 16, 30], deferred
    assert sum(deferred) >= ORPHAN_GRACE  # it was held past the grace, then dropped
    dlq = env.stack.refs["WorkflowTaskDLQ"]
    assert "Messages" not in env.sqs.receive_message(QueueUrl=dlq)
    assert env.runtime.store.get_head("ghost") is None
    assert env.next_due() is None  # nothing left circulating
