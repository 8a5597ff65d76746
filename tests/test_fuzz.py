"""Schemathesis fuzzes `ostinato dev` from its own `/openapi.json`, and finds nothing.

Every route, every check (the defaults: all of them; `tests/fuzz/schemathesis.toml` says the
one exception and why), the coverage, fuzzing and stateful phases. The budget and the seed
are fixed, one worker, no example database: the same cases every run. A failure means the
API answered what its document does not promise (a 5xx, an undocumented status, a refused
valid request, an accepted invalid one, a body of the wrong shape, ...): fix the server or
the document, not this test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.apps.devserver import ROOT, DevServer

pytestmark = pytest.mark.slow

CONFIG = ROOT / "tests" / "fuzz" / "schemathesis.toml"
MAX_EXAMPLES = 20  # per operation and phase; about a minute on two cores
SEED = 1
PHASES = ("coverage", "fuzzing", "stateful")  # examples: the document has none


def test_schemathesis_finds_nothing(tmp_path):
    report = tmp_path / "schemathesis.json"
    server = DevServer(tmp_path / "dev.log").start()
    try:
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
             f"{server.url}/openapi.json", "--max-examples", str(MAX_EXAMPLES),
             "--seed", str(SEED), "--workers", "1", "--generation-database", "none",
             "--no-color", "--report", "json", "--report-json-path", str(report)],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])})
        seconds = time.monotonic() - began
    finally:
        server.stop()
    assert report.exists(), done.stdout[-5000:] + done.stderr[-5000:]
    run = json.loads(report.read_text())
    cases = run["test_cases"]
    print(f"schemathesis {run['schemathesis_version']}: {cases['generated']} cases over "
          f"{run['operations']['tested']} operations in {seconds:.0f} s (seed {SEED})")
    assert done.returncode == 0 and not run["failures"] and not run["errors"], (
        done.stdout[-20000:] + done.stderr[-3000:])
    assert cases["unique_failures"] == 0 and cases["errored"] == 0
    assert run["operations"]["tested"] == run["operations"]["total"] == 15
    assert {phase: run["phases"][phase]["status"] for phase in PHASES} == {
        phase: "success" for phase in PHASES}
