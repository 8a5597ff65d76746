"""Import time of the Lambda handler modules (`functions/*/app.py`), in fresh interpreters."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections import defaultdict
from typing import Any

from .harness import ROOT, timed


def handler_modules() -> list[str]:
    wanted = ["workflow_task", "activity_task", "timer", "api"]
    present = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
    ordered = [m for m in wanted if m in present] + [m for m in present if m not in wanted]
    return [f"functions.{m}.app" for m in ordered]


def _subprocess_env() -> dict[str, str]:
    """The child's PYTHONPATH: the checkout (for `functions`) and its `src`, then the caller's."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path.rstrip(os.pathsep)}


def import_time_ms(module: str) -> dict[str, float]:
    """Wall and CPU ms of `import module` in a fresh interpreter (interpreter start excluded)."""
    code = ("import time; w, c = time.perf_counter(), time.process_time(); import " + module +
            "; print(time.perf_counter() - w, time.process_time() - c)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_subprocess_env(),
                         capture_output=True, text=True, check=True)
    wall, cpu = (float(x) * 1000 for x in out.stdout.split())
    return {"wall_ms": wall, "cpu_ms": cpu}


def import_top(module: str, top: int = 8) -> list[tuple[str, float]]:
    """Import time by top-level package (sum of `python -X importtime` self times), one run."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import " + module],
                         cwd=ROOT, env=_subprocess_env(), capture_output=True, text=True,
                         check=True)
    totals: dict[str, float] = defaultdict(float)
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        self_us = int(parts[0].removeprefix("import time:").strip())
        totals[parts[2].strip().split(".")[0]] += self_us / 1000
    return sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def run_imports(runs: int, verbose: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for module in handler_modules():
        result[module] = timed(functools.partial(import_time_ms, module), runs,
                               f"import {module}", verbose)
    return result
