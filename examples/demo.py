"""The README's demo: run the order workflow in-process on the emulated stack and show it.

    python -m examples.demo

Starts `examples.order`'s workflow, signals the approval, waits for the result (its 1-hour
sleep passes in virtual time), then prints the history as a timeline.
"""

from __future__ import annotations

import json
import logging
import os
import time

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from rich.console import Console
from rich.table import Table

from examples.order import app, order
from ostinato.testing import WorkflowEnvironment


def _summary(attributes: dict) -> str:
    shown = {k: v for k, v in attributes.items()
             if k not in ("options", "stack", "workflow_id", "run_id", "start_time")}
    text = json.dumps(shown, default=str)
    return text if len(text) < 90 else text[:87] + "..."


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    console = Console(width=max(Console().width, 130))
    began = time.perf_counter()
    with WorkflowEnvironment(app) as env:
        handle = env.client.start_workflow(order, ["espresso beans", "grinder"], id="order-1")
        env.drain()
        console.print(f"[bold]started[/] order-1, status: {handle.describe().custom_status!r}")
        console.print(f"query progress -> {handle.query('progress')}")
        handle.signal("approve", "ann")
        console.print("signalled approve('ann')")
        result = handle.result(timeout=60)
        console.print(f"[bold green]result[/] {json.dumps(result)}")
        history = handle.history()
        start = history[0].timestamp
        table = Table(title=f"history of order-1 ({len(history)} events)")
        for column in ("#", "t+", "event", "details"):
            table.add_column(column)
        for event in history:
            offset = (event.timestamp - start).total_seconds()
            table.add_row(str(event.event_id), f"{offset:>7.1f}s", event.event_type,
                          _summary(event.attributes))
        console.print(table)
        console.print(f"describe: {handle.describe().status}; virtual time passed: "
                      f"{(env.now() - start).total_seconds():.0f}s; wall time: "
                      f"{time.perf_counter() - began:.2f}s")


if __name__ == "__main__":
    main()
