"""Checks that a recorded history is what full replays decide, batch by batch.

For every decided batch N of a run, the run's batches before N are replayed from event 1 into
a fresh instance, which is then given batch N's inbound events (its local activities answered
from batch N's markers, its callback secrets from batch N's events). What that instance
decides must be batch N, event by event, with the same state: so a batch decided by a sticky
(live) instance is exactly what a full replay would have decided in its place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ostinato._core import history as h
from ostinato._core.definitions import App
from ostinato._core.index import HistoryIndex
from ostinato._core.replay import LocalOutcome, Replayer, info_from_started, replay_history

STATE_KEYS = ("status", "custom_status", "result", "failure", "new_run_id", "local_retries")


def _norm(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def full_replay_decision(app: App, batches: list[h.Batch], n: int) -> Any:
    """What a fresh instance, replayed through batches[:n], decides for batches[n]."""
    batch = batches[n]
    started = batches[0].events[0][1]
    definition = app.workflow(started["workflow_type"])
    if n:
        replayer = replay_history(definition, batches[:n], app.activities)
    else:
        replayer = Replayer(definition, info_from_started(started, batch.time), app.activities)
    inbound = []
    for etype, attrs in batch.events:
        if etype not in h.INBOUND:
            break
        inbound.append((etype, attrs))
    markers = {attrs["seq"]: attrs for etype, attrs in batch.events
               if etype == h.MARKER_RECORDED and attrs.get("marker") == "local_activity"}
    retries = batch.state.get("local_retries") or {}

    def run_local(cmd: h.RunLocalActivity, attempt: int) -> LocalOutcome:
        if cmd.seq in markers:
            attrs = markers[cmd.seq]
            return LocalOutcome(attrs["attempt"], attrs.get("result"), attrs.get("failure"))
        state = retries[str(cmd.seq)]
        return LocalOutcome(state["attempt"] - 1, retry_at=state["at"])

    secrets: Iterator[str] = iter([attrs["secret"] for etype, attrs in batch.events
                                   if etype == h.CALLBACK_CREATED])
    replayer.instance.new_secret = lambda: next(secrets)
    previous = batches[n - 1].state.get("local_retries") if n else None
    return replayer.decide(inbound, batch.time, run_local, previous)


def check_run(app: App, batches: list[h.Batch]) -> int:
    """Assert every decided batch is what a full replay decides; return how many were."""
    checked = 0
    for n, batch in enumerate(batches):
        if not batch.decided:
            continue
        decision = full_replay_decision(app, batches, n)
        mine = [_norm(list(e)) for e in decision.events]
        recorded = [_norm(list(e)) for e in batch.events]
        for i, (a, b) in enumerate(zip(mine, recorded, strict=False)):
            assert a == b, f"batch {batch.number} event {i}: full replay {a} != recorded {b}"
        assert len(mine) == len(recorded), (batch.number, mine, recorded)
        state = decision.state(batch.time)
        for key in STATE_KEYS:
            if key == "close_time":
                continue
            assert _norm(state.get(key)) == _norm(batch.state.get(key)), (batch.number, key)
        checked += 1
    return checked


def check_index(batches: list[h.Batch], index: HistoryIndex) -> None:
    """A cached index is the index of the whole history."""
    assert index == HistoryIndex.of(batches)
