"""Per-request latency of the local stack (`ostinato dev`), over real HTTP on loopback.

    .venv/bin/python benchmarks/local_stack.py [--requests 40]

Starts `ostinato dev examples.order:app` as a subprocess (moto server, pollers, HTTP API),
then times each API route and the end-to-end latency of a workflow step (signal -> next event
visible in history). Prints medians and 90th percentiles in milliseconds. Handler import
times are in `python -m benchmarks.run --only imports`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks run from a checkout, beside the tests' helpers

from tests.apps.devserver import DevServer  # noqa: E402


def _timed(server: DevServer, method: str, path: str, body: object = None,
           expect: int = 200) -> float:
    began = time.perf_counter()
    status, payload = server.http(method, path, body)
    elapsed = (time.perf_counter() - began) * 1000
    if status != expect:
        raise RuntimeError(f"{method} {path} -> {status} {payload}")
    return elapsed


def _row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[max(0, int(len(ordered) * 0.9) - 1)]
    return f"  {name:<44} median {statistics.median(ordered):7.1f} ms   p90 {p90:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per route")
    n = parser.parse_args().requests
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(Path(tmp) / "dev.log", "examples.order:app").start()
        try:
            print(f"ostinato dev ready in {server.startup_seconds:.2f} s at {server.url}")
            _timed(server, "GET", "/openapi.json")  # warm the API handler (cold import)
            rows: dict[str, list[float]] = {k: [] for k in (
                "POST /workflows", "GET /workflows/{id}", "POST .../queries/progress",
                "POST .../signals/approve", "GET .../history", "GET /workflows?status=",
                "signal -> workflow step visible")}
            for i in range(n):
                wid = f"bench-{i}"
                rows["POST /workflows"].append(_timed(
                    server, "POST", "/workflows",
                    {"workflow_type": "order", "args": [["a"], 0], "id": wid}, 201))
                deadline = time.monotonic() + 30
                while server.http("GET", f"/workflows/{wid}")[1]["custom_status"] != \
                        "awaiting approval":
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{wid} did not reach its approval wait")
                    time.sleep(0.005)
                rows["GET /workflows/{id}"].append(_timed(server, "GET", f"/workflows/{wid}"))
                rows["POST .../queries/progress"].append(_timed(
                    server, "POST", f"/workflows/{wid}/queries/progress", {"args": []}))
                began = time.perf_counter()
                _timed(server, "POST", f"/workflows/{wid}/signals/approve", {"args": ["ann"]},
                       202)
                rows["POST .../signals/approve"].append((time.perf_counter() - began) * 1000)
                while True:  # the signal's workflow task ran: the next activity is scheduled
                    events = server.http("GET", f"/workflows/{wid}/history")[1]["events"]
                    if any(e["event_type"] == "WorkflowExecutionSignaled" for e in events):
                        break
                    if time.perf_counter() - began > 30:
                        raise RuntimeError(f"{wid}: signal not recorded")
                    time.sleep(0.002)
                rows["signal -> workflow step visible"].append(
                    (time.perf_counter() - began) * 1000)
                rows["GET .../history"].append(_timed(server, "GET", f"/workflows/{wid}/history"))
                rows["GET /workflows?status="].append(_timed(
                    server, "GET", "/workflows?status=RUNNING&limit=20"))
            print(f"per-request latency over loopback, {n} requests each:")
            for name, samples in rows.items():
                print(_row(name, samples))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
