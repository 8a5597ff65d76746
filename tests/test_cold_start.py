"""Cold start: each Lambda handler loads what its own path needs, and nothing else.

Each check runs in a fresh interpreter, imports `functions/<name>/app.py` as Lambda does, then
(as its first invocation does) builds the runtime from a stack's environment, makes what the
handler's path makes before its first AWS call (the decider, the activity worker, the client)
and calls the handler once with its `events/*.json` fixture made unreadable, so that nothing
reaches AWS.
The modules loaded after each step are compared with what that handler's path must not load,
so an eager import added later fails here, without timing anything (the times are in
`python -m benchmarks.imports`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: what no handler's import loads: the AWS SDK and the adapters over it (built with the
#: runtime, on the first invocation; Powertools imports the bare `botocore` package, to add
#: its user agent, not its client machinery), the engine's workers, event triggers, the
#: replay core (the client replays for queries and updates only)
NOT_AT_IMPORT = ("boto3", "botocore.client", "botocore.session", "botocore.config", "pynamodb",
                 "ostinato._aws.store", "ostinato._aws.transport", "ostinato._stack_client",
                 "ostinato._engine.decider", "ostinato._engine.activities",
                 "ostinato._client.triggers", "ostinato._core.replay", "ostinato._core.instance",
                 "ostinato._core.context")
#: nor do the SQS handlers' imports load the client, the API's models, cron or schedules
SQS_NOT_AT_IMPORT = (*NOT_AT_IMPORT, "pydantic", "ostinato._api", "ostinato._client",
                     "ostinato._core.cron")

#: handler -> (its events/ fixture, what its path makes before the first AWS call, which
#: the unreadable record stops short of, and modules it must not load by the end of it all)
HANDLERS = {
    "workflow_task": ("sqs_workflow_task.json", "rt.engine.decider", (
        "pydantic", "ostinato._api", "ostinato._stack_client", "ostinato._client.client",
        "ostinato._client.triggers", "ostinato._client.schedules", "ostinato._core.cron")),
    "activity_task": ("sqs_activity_task.json", "rt.engine.activities", (
        "pydantic", "ostinato._api", "ostinato._stack_client", "ostinato._client.client",
        "ostinato._engine.decider", "ostinato._core.replay", "ostinato._core.instance",
        "ostinato._client.triggers", "ostinato._core.cron")),
    "timer": ("sqs_timer_wakeup.json", "", (
        "pydantic", "ostinato._api", "ostinato._stack_client", "ostinato._client.client",
        "ostinato._engine.decider", "ostinato._engine.activities", "ostinato._core.replay",
        "ostinato._client.triggers", "ostinato._core.cron")),
    "events": ("sqs_trigger_event.json", "rt.client; import ostinato._client.triggers", (
        "pydantic", "ostinato._api", "ostinato._engine.decider", "ostinato._core.cron")),
    "api": ("api_start_workflow.json", "rt.client",
            ("ostinato._engine.decider", "ostinato._engine.activities", "ostinato._core.replay")),
}

STACK_ENV = {
    "OSTINATO_APP": "examples.order:app",
    "OSTINATO_TABLE": "cold-start",
    "OSTINATO_WORKFLOW_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/wf.fifo",
    "OSTINATO_TIMER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/timers",
    "OSTINATO_TRIGGER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/triggers",
    "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
    "AWS_LAMBDA_FUNCTION_NAME": "cold-start",
}

CHILD = """
import json, sys
def loaded():
    return sorted(m for m in sys.modules)
import functions.{name}.app as app
at_import = loaded()
class Context:
    function_name = "cold-start"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cold-start"
    aws_request_id = "cold-start"
    def get_remaining_time_in_millis(self):
        return 300000
from ostinato import _runtime
rt = _runtime.get()
{setup}
try:
    result = app.handler(json.loads({event!r}), Context())
except Exception as exc:  # every record unreadable: Powertools fails the whole batch
    result = type(exc).__name__
print("\\n" + json.dumps({{"at_import": at_import, "after_call": loaded(),
                          "result": repr(result)}}))
"""


def unreadable(fixture: str) -> str:
    event = json.loads((ROOT / "events" / fixture).read_text())
    if "Records" in event:
        for record in event["Records"]:
            record["body"] = "not json"
    else:
        event["body"] = json.dumps({"args": []})  # no workflow_type: a 422 before any call
    return json.dumps(event)


def cold_start(name: str) -> dict[str, object]:
    fixture, setup, _ = HANDLERS[name]
    path = os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(name=name, event=unreadable(fixture), setup=setup)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **STACK_ENV, "PYTHONPATH": path.rstrip(os.pathsep)})
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def within(loaded: list[str], names: tuple[str, ...]) -> list[str]:
    """The modules of `loaded` that are one of `names` or inside one of them."""
    return sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in names))


@pytest.mark.parametrize("name", list(HANDLERS))
def test_a_handler_loads_only_its_own_path(name: str) -> None:
    run = cold_start(name)
    forbidden_at_import = SQS_NOT_AT_IMPORT if name != "api" else NOT_AT_IMPORT
    assert within(run["at_import"], forbidden_at_import) == []  # type: ignore[arg-type]
    # the first invocation really ran: the runtime was built (the AWS SDK loaded) and the
    # handler answered its (unreadable) event
    assert "botocore.client" in run["after_call"]  # type: ignore[operator]
    assert run["result"] not in ("None", "")
    assert within(run["after_call"], HANDLERS[name][2]) == []  # type: ignore[arg-type]


def test_the_api_handler_is_built_on_first_use_only() -> None:
    """The SQS handlers' module holds the api handler too; its routes load when it is asked
    for (`functions/api/app.py`), which the test above checks loads no engine worker."""
    run = cold_start("workflow_task")
    assert "ostinato._api.routes" not in run["after_call"]  # type: ignore[operator]


def test_importing_ostinato_loads_no_client_engine_or_asyncio() -> None:
    """`import ostinato` (workflow code does it, so does `ostinato replay`) loads definitions
    and errors; the other public names load on first use, and `from ostinato import X`
    still works for every one of them."""
    code = ("import json, sys, ostinato; before = sorted(sys.modules); "
            "from ostinato import Client, EventTrigger, WorkflowContext, WorkflowInfo, Event; "
            "from ostinato import ActivityContext, activity_context, WorkflowHandle; "
            "print(json.dumps(before))")
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": path.rstrip(os.pathsep)})
    assert done.returncode == 0, done.stderr[-3000:]
    before = json.loads(done.stdout)
    assert within(before, ("asyncio", "boto3", "botocore", "ostinato._client",
                           "ostinato._engine", "ostinato._core.replay", "ostinato._core.context",
                           "ostinato._stack_client", "ostinato._runtime")) == []


def test_the_store_makes_one_dynamodb_client_for_all_its_item_kinds(make_env) -> None:
    """pynamodb would make a botocore client per model class on its first request (100-200 ms
    each on a cold Lambda); after a run that touched heads, batches, outcomes, heartbeats
    (from an activity's worker thread) and schedules, every model still holds the first one."""
    from datetime import timedelta

    import ostinato
    from ostinato._aws.store import Store

    @ostinato.activity(heartbeat_timeout=timedelta(minutes=1))
    def beat() -> str:
        ostinato.activity_context().heartbeat("half")
        return "done"

    @ostinato.workflow
    async def flow(ctx: ostinato.WorkflowContext) -> str:
        return str(await ctx.execute_activity(beat))

    env = make_env(ostinato.App(workflows=[flow], activities=[beat]), backend="moto")
    assert env.client.start_workflow(flow, id="one-client").result() == "done"
    env.client.create_schedule("hourly", flow, rate="1 hour")
    store = env.client.store
    assert isinstance(store, Store)
    models = [store._head, store._batch, store._heartbeat, store._claim, store._schedule]
    clients = {id(m._get_connection().connection._client) for m in models}
    assert len(clients) == 1 and None not in clients
