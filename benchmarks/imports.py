"""Cold start of the Lambda handlers (`functions/*/app.py`), each run in a fresh interpreter.

    python -m benchmarks.imports [--runs 7]     # this table alone (also `run --only imports`)

Two figures per handler, both medians (min, max) over fresh interpreters:

- **import**: `import functions.<x>.app`, timed with `perf_counter` inside the child (interpreter
  start-up is not counted). This is what Lambda's Init phase runs.
- **first call**: the import, then the first invocation's setup and one invocation: the runtime
  built from the environment (`_runtime.get()`: settings, the workflow code, the adapters and
  their boto3 clients) and what the handler's path makes before its first AWS call (the
  decider, the activity worker, the client: `PATH_SETUP`), then the handler called once with
  its `events/*.json` fixture made unreadable (SQS bodies that are not JSON; an API request
  whose body fails validation), so it runs the whole trigger-parsing path and answers without
  any AWS call (an SQS batch whose every record failed raises, as Powertools does: the child
  catches it). What it leaves out: the network. The store's one DynamoDB client is made with
  the runtime (`_aws/store._share_client`); until December 2026 pynamodb made one per model
  class on its first request (five, 100-200 ms each), outside this figure. A cost moved out
  of the import shows up here.

Every child first imports what the Lambda runtime has loaded before it imports a handler
(`RUNTIME_PRELOAD`: awslambdaric's bootstrap imports json, logging, traceback and a thread
pool), untimed: those modules are not the handler's cost.

Then, per handler, what dominates the import (one `python -X importtime` run): the heaviest
modules by cumulative time (nested: a package's figure includes what it imports) and the self
time summed by top-level package.

ostinato runs byte-compiled, as the deployment holds it: `sam build` builds every function
with `scripts/lambda_build.py`, which byte-compiles the whole code directory (unchecked-hash
pycs), and the virtualenv's packages were byte-compiled by pip. `--from-source` compiles
ostinato from source in every child instead (these machines set PYTHONDONTWRITEBYTECODE, and
the checkout has no `__pycache__`), which is what SAM's own Python builder ships for every
package, dependencies included: a function's code directory is read-only, so a package
without pycs is compiled at every cold start. `--package DIR` measures a code directory built
by `scripts/lambda_build.py --platform manylinux2014_x86_64` (this machine's) alone on the
path (`python -S`), as Lambda runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from .harness import ROOT, summarize

#: functions/<dir> -> the events/ fixture its first call is fed (made unreadable, see above)
FIXTURES = {"workflow_task": "sqs_workflow_task.json", "activity_task": "sqs_activity_task.json",
            "timer": "sqs_timer_wakeup.json", "events": "sqs_trigger_event.json",
            "api": "api_start_workflow.json"}

#: what the handler's first real record makes before its first AWS call, touched explicitly
#: because the unreadable record stops short of it (the engine makes its workers on first use)
PATH_SETUP = {"workflow_task": "rt.engine.decider", "activity_task": "rt.engine.activities",
              "timer": "", "events": "rt.client; import ostinato._client.triggers",
              "api": "rt.client"}

#: the environment a deployed function has (template.yaml), with made-up names: nothing is
#: called, so nothing needs to exist
STACK_ENV = {
    "OSTINATO_APP": "benchmarks.apps:app",
    "OSTINATO_TABLE": "bench-table",
    "OSTINATO_WORKFLOW_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/wf.fifo",
    "OSTINATO_TIMER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/timers",
    "OSTINATO_TIMER_QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:timers",
    "OSTINATO_TRIGGER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/triggers",
    "OSTINATO_TRIGGER_QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:triggers",
    "OSTINATO_ACTIVITY_QUEUE_URLS": json.dumps(
        {"default": "https://sqs.us-east-1.amazonaws.com/123456789012/activities"}),
    "OSTINATO_SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/scheduler",
    "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",  # as on Lambda: the EMF observer is wired
    "POWERTOOLS_LOG_LEVEL": "CRITICAL",  # the poison records' tracebacks stay out of the way
}

#: What the Lambda runtime has imported before it imports the handler (awslambdaric's
#: bootstrap.py and lambda_runtime_client.py): loaded in every child first, not timed.
RUNTIME_PRELOAD = "import importlib, json, logging, os, sys, time, traceback, concurrent.futures"

_PRELOADED = "-- preloaded --"

_FIRST_CALL = RUNTIME_PRELOAD + """
import json, sys, time
w0, c0 = time.perf_counter(), time.process_time()
import functions.{name}.app as app
w1, c1 = time.perf_counter(), time.process_time()
from ostinato import _runtime
rt = _runtime.get()
{setup}
w2, c2 = time.perf_counter(), time.process_time()

class Context:
    function_name = "bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"
    def get_remaining_time_in_millis(self):
        return 300000

event = json.loads({event!r})
try:
    result = app.handler(event, Context())
except Exception as exc:  # every record unreadable: Powertools fails the whole batch
    result = exc
w3, c3 = time.perf_counter(), time.process_time()
print("\\n" + json.dumps({{"result": repr(result)[:200],
    "import_ms": (w1 - w0) * 1000, "runtime_ms": (w2 - w0) * 1000,
    "first_call_ms": (w3 - w0) * 1000, "first_call_cpu_ms": (c3 - c0) * 1000}}))
"""


#: checkout -> a byte-compiled copy of its `src/ostinato`, used in its place (not `--from-source`)
_COMPILED: dict[Path, Path] = {}
#: `--package DIR`: children run `python -S` with only DIR on the path (a built code directory)
_PACKAGE: list[Path] = []


def byte_compiled(root: Path, into: Path) -> Path:
    """A copy of `root`'s src/ostinato under `into`, byte-compiled as the deployment holds it."""
    import compileall
    import py_compile
    import shutil

    target = into / "src"
    shutil.copytree(root / "src" / "ostinato", target / "ostinato")
    compileall.compile_dir(target, quiet=1,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return target


def _cwd(root: Path) -> Path:
    return _PACKAGE[0] if _PACKAGE else root


def _python() -> list[str]:
    return [sys.executable, "-S"] if _PACKAGE else [sys.executable]


def handler_modules(root: Path = ROOT) -> list[str]:
    wanted = list(FIXTURES)
    present = sorted(p.parent.name for p in (root / "functions").glob("*/app.py"))
    ordered = [m for m in wanted if m in present] + [m for m in present if m not in wanted]
    return [f"functions.{m}.app" for m in ordered]


def _subprocess_env(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The child's PYTHONPATH: the checkout (for `functions`) and its `src`, then the
    caller's minus any other checkout's `src` (so `--against` measures that checkout)."""
    if _PACKAGE:
        return {**os.environ, **(extra or {}), "PYTHONPATH": str(_PACKAGE[0])}
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                 if p and not p.rstrip("/").endswith("src")]
    path = os.pathsep.join([str(root), str(_COMPILED.get(root, root / "src")), *inherited])
    return {**os.environ, **(extra or {}), "PYTHONPATH": path}


def import_time_ms(module: str, root: Path = ROOT) -> dict[str, float]:
    """Wall and CPU ms of `import module` in a fresh interpreter (interpreter start excluded)."""
    code = (f"{RUNTIME_PRELOAD}; w, c = time.perf_counter(), time.process_time(); "
            f"import {module}; print(time.perf_counter() - w, time.process_time() - c)")
    out = subprocess.run([*_python(), "-c", code], cwd=_cwd(root), env=_subprocess_env(root),
                         capture_output=True, text=True, check=True)
    wall, cpu = (float(x) * 1000 for x in out.stdout.split())
    return {"wall_ms": wall, "cpu_ms": cpu}


def unreadable(name: str) -> str:
    """The handler's fixture with its payload made unreadable (see the module docstring)."""
    event = json.loads((ROOT / "events" / FIXTURES[name]).read_text())  # this checkout's
    if "Records" in event:
        for record in event["Records"]:
            record["body"] = "not json"
    else:
        event["body"] = json.dumps({"args": []})  # no workflow_type: a 422, no AWS call
    return json.dumps(event)


def first_call_ms(module: str, root: Path = ROOT) -> dict[str, float]:
    """Import, runtime build and one invocation, ms since the import began (fresh interpreter)."""
    name = module.split(".")[1]
    code = _FIRST_CALL.format(name=name, event=unreadable(name), setup=PATH_SETUP[name])
    env = _subprocess_env(root, STACK_ENV)
    out = subprocess.run([*_python(), "-c", code], cwd=_cwd(root), env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"first call of {module} failed:\n{out.stderr[-2000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    del figures["result"]
    return figures


def importtime(module: str, root: Path = ROOT) -> list[tuple[str, int, int, int]]:
    """`python -X importtime -c 'import module'`: (name, depth, self us, cumulative us)."""
    out = subprocess.run([*_python(), "-X", "importtime", "-c",
                          f"{RUNTIME_PRELOAD}; print('{_PRELOADED}', file=sys.stderr); "
                          f"import {module}"],
                         cwd=_cwd(root), env=_subprocess_env(root), capture_output=True, text=True,
                         check=True)
    rows = []
    for line in out.stderr.split(_PRELOADED, 1)[-1].splitlines():  # the handler's imports
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((name.strip(), depth, int(parts[0]), int(parts[1])))
    return rows


def import_top(module: str, top: int = 8,
               root: Path = ROOT) -> dict[str, list[tuple[str, float]]]:
    """What dominates importing `module`: the heaviest modules by cumulative ms (leaving out
    the handler's own chain of re-exports) and self ms summed by top-level package."""
    rows = importtime(module, root)
    chain = {"functions", module.rsplit(".", 1)[0], module, "ostinato.lambda_handlers"}
    cumulative: dict[str, float] = {}
    for name, _, _, cum_us in rows:  # a package imported twice over (`a.b` then `a`): its max
        if name not in chain:
            cumulative[name] = max(cumulative.get(name, 0.0), cum_us / 1000)
    heaviest = sorted(cumulative.items(), key=lambda kv: -kv[1])[:top]
    totals: dict[str, float] = defaultdict(float)
    for name, _, self_us, _ in rows:
        totals[name.split(".")[0]] += self_us / 1000
    packages = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return {"cumulative": heaviest, "self_by_package": packages}


def run_imports(runs: int, verbose: bool, roots: tuple[Path, ...] = (ROOT,)) -> dict[str, Any]:
    """Per handler: import time, first-call time (both over `runs` fresh interpreters) and
    what dominates its import. With several checkouts (`--against`) their runs alternate, so
    a shared machine's load falls on all of them alike; results are keyed by checkout."""
    results: dict[str, Any] = {str(root): {} for root in roots}
    for module in handler_modules():
        samples: dict[Path, dict[str, list[Any]]] = {r: {"import": [], "first": []} for r in roots}
        for i in range(runs):
            for root in roots:
                samples[root]["import"].append(import_time_ms(module, root))
                samples[root]["first"].append(first_call_ms(module, root))
                if verbose:
                    print(f"  {module} run {i + 1}/{runs} [{root}]: import "
                          f"{samples[root]['import'][-1]['wall_ms']:.0f} ms, first call "
                          f"{samples[root]['first'][-1]['first_call_ms']:.0f} ms",
                          file=sys.stderr, flush=True)
        for root in roots:
            results[str(root)][module] = {
                "import": _summaries(samples[root]["import"]),
                "first_call": _summaries(samples[root]["first"]),
                "top": import_top(module, root=root)}
    return results if len(roots) > 1 else results[str(ROOT)]


def _summaries(samples: list[dict[str, float]]) -> dict[str, Any]:
    return {k: summarize([s[k] for s in samples]) for k in samples[0]}


def print_imports(res: dict[str, Any], out: Any = print) -> None:
    def stat(s: dict[str, Any]) -> str:
        return f"{s['median']:6.0f} ms (min {s['min']:.0f}, max {s['max']:.0f}, n={s['runs']})"

    bytecode = (f"the built package {_PACKAGE[0]}" if _PACKAGE else "ostinato byte-compiled"
                if _COMPILED else "ostinato compiled from source" if os.environ.get(
                    "PYTHONDONTWRITEBYTECODE") else "ostinato's bytecode cache allowed")
    out(f"\nHandler cold start, fresh interpreter each run ({bytecode}):")
    for module, r in res.items():
        first = r["first_call"]
        out(f"  {module:<28} import {stat(r['import']['wall_ms'])}  cpu "
            f"{r['import']['cpu_ms']['median']:.0f}")
        out(f"  {'':<28}   first call {stat(first['first_call_ms'])}  cpu "
            f"{first['first_call_cpu_ms']['median']:.0f}  (runtime built at "
            f"{first['runtime_ms']['median']:.0f} ms)")
        top = r["top"]
        out(f"  {'':<30}heaviest (cumulative ms): " + ", ".join(
            f"{n} {ms:.0f}" for n, ms in top["cumulative"]))
        out(f"  {'':<30}self ms by package: " + ", ".join(
            f"{n} {ms:.0f}" for n, ms in top["self_by_package"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per figure")
    parser.add_argument("--against", metavar="CHECKOUT", type=Path,
                        help="also measure another checkout (e.g. main's), runs alternating")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--from-source", action="store_true",
                        help="compile ostinato from source in every child (no pycs shipped)")
    parser.add_argument("--package", metavar="DIR", type=Path,
                        help="measure a code directory built by scripts/lambda_build.py")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    args = parser.parse_args(argv)
    roots = (ROOT, args.against.resolve()) if args.against else (ROOT,)
    if args.package:
        if args.against:
            parser.error("--package measures one built directory: no --against")
        _PACKAGE.append(args.package.resolve())
    elif not args.from_source:
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix="ostinato-bytecode-"))
        for i, root in enumerate(roots):
            _COMPILED[root] = byte_compiled(root, tmp / str(i))
    res = run_imports(args.runs, args.verbose, roots)
    for root in roots if args.against else ():
        print(f"\n== {root}")
        print_imports(res[str(root)])
    if not args.against:
        print_imports(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
