"""The `ostinato` command: `dev`, `workflow ...`, `callback ...`, `schedule ...` and `event put`
(over the HTTP API) and `replay`.

Failures print one `error: ...` line on stderr and exit non-zero; never a traceback
(set OSTINATO_DEBUG=1 to get one).
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import click

from .._core.history import Status
from .apiclient import DEFAULT_API_URL, ApiError, segment
from .connection import CliError, client, command_options, group_options
from .render import (
    STATUS_STYLES,
    console,
    escape,
    print_json,
    short_time,
    style_event,
    timestamp,
)

#: How long `workflow result` waits for a workflow that does not exist yet (a trigger's).
NOT_STARTED_GRACE = 5.0


def _fail(message: str) -> NoReturn:
    raise CliError(message)


def _parse_args(values: tuple[str, ...]) -> list[Any]:
    """Each ARG_JSON as JSON; a value that is not JSON is taken as a plain string."""
    parsed = []
    for value in values:
        try:
            parsed.append(json.loads(value))
        except ValueError:
            parsed.append(value)
    return parsed


# -- the command tree ---------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ostinato")
@group_options
def cli() -> None:
    """Durable workflows as plain Python, serverless on your own AWS account."""


@cli.command()
@click.argument("app", default="examples.order:app", metavar="[APP]")
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535),
              help="HTTP API port on 127.0.0.1 (0: any free port).")
@click.option("--dynamodb-local", is_flag=True,
              help="Keep the table in the official DynamoDB Local engine instead of moto.")
@click.option("--template", type=click.Path(exists=True, dir_okay=False),
              help="SAM template to build the stack from (default: ./template.yaml).")
def dev(app: str, port: int, dynamodb_local: bool, template: str | None) -> None:
    """Run the whole stack locally: embedded AWS, the functions, the HTTP API.

    APP is the ostinato.App to load, as package.module:attribute.
    """
    from .._local import dev as _dev

    try:
        _dev.run(app, port, dynamodb_local=dynamodb_local, template=template)
    except RuntimeError as exc:
        _fail(str(exc))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            _fail(f"port {port} is already in use (another `ostinato dev`?); try --port")
        raise


def _api_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = command_options(fn)  # --stack, --auth, --profile, --region
    fn = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(fn)
    return click.option("--api-url", envvar="OSTINATO_API_URL", default=DEFAULT_API_URL,
                        show_default=True, help="The ostinato HTTP API (env OSTINATO_API_URL).")(fn)


@cli.group()
def workflow() -> None:
    """Start, signal, query, cancel, terminate, describe and list workflows."""


def _call(api_url: str, method: str, path: str, body: Any = None,
          query: dict[str, Any] | None = None) -> Any:
    try:
        return client(api_url).request(method, path, body, query)
    except ApiError as exc:
        _fail(str(exc))


def _wf(workflow_id: str, *rest: str) -> str:
    return "/".join(["/workflows", segment(workflow_id), *(segment(r) for r in rest)])


@workflow.command()
@click.argument("workflow_type")
@click.argument("args", nargs=-1, metavar="[ARG_JSON]...")
@click.option("--id", "workflow_id", help="Workflow id (default: a new UUID).")
@click.option("--id-conflict-policy", type=click.Choice(["fail", "use_existing"]),
              default="fail", show_default=True)
@_api_options
def start(workflow_type: str, args: tuple[str, ...], workflow_id: str | None,
          id_conflict_policy: str, api_url: str, as_json: bool) -> None:
    """Start a WORKFLOW_TYPE workflow with JSON arguments."""
    body: dict[str, Any] = {"workflow_type": workflow_type, "args": _parse_args(args),
                            "id_conflict_policy": id_conflict_policy}
    if workflow_id is not None:
        body["id"] = workflow_id
    answer = _call(api_url, "POST", "/workflows", body)
    if as_json:
        print_json(answer)
    else:
        click.echo(f"started {answer['workflow_id']} (run {answer['run_id']})")


@workflow.command()
@click.argument("workflow_id")
@_api_options
def describe(workflow_id: str, api_url: str, as_json: bool) -> None:
    """Show a workflow's status, result or error."""
    answer = _call(api_url, "GET", _wf(workflow_id))
    if as_json:
        print_json(answer)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key in ("workflow_id", "run_id", "workflow_type", "status", "custom_status",
                "start_time", "close_time", "result", "error"):
        value = answer.get(key)
        if key == "status":
            shown = f"[{STATUS_STYLES.get(value, 'white')}]{value}[/]"
        elif value is None or isinstance(value, str):
            shown = "" if value is None else escape(value)
        else:
            shown = escape(json.dumps(value, ensure_ascii=False))
        table.add_row(key, shown)
    console().print(table)


@workflow.command()
@click.argument("workflow_id")
@click.option("--run-id", help="A past run of the id (default: the current one).")
@_api_options
def history(workflow_id: str, run_id: str | None, api_url: str, as_json: bool) -> None:
    """Show a run's history as a timeline (--json: a document `ostinato replay` reads)."""
    answer = _call(api_url, "GET", _wf(workflow_id, "history"), query={"run_id": run_id})
    while answer.get("next_token"):  # a long run comes in pages: put the document together
        page = _call(api_url, "GET", _wf(workflow_id, "history"),
                     query={"run_id": answer.get("run_id"), "next_token": answer["next_token"]})
        answer["events"] += page.get("events", [])
        answer["tasks"] += page.get("tasks", [])
        answer["next_token"] = page.get("next_token")
    if as_json:
        print_json(answer)
        return
    from rich.table import Table

    from .._core.eventfmt import summarize

    events = answer.get("events", [])
    table = Table(title=f"{workflow_id}  run {answer.get('run_id', '')}", title_justify="left",
                  box=None, header_style="bold")
    for column, justify in (("#", "right"), ("time", "left"), ("+s", "right"),
                            ("event", "left"), ("details", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    first = timestamp(events[0]["timestamp"]) if events else None
    for event in events:
        at = timestamp(event["timestamp"])
        elapsed = f"{(at - first).total_seconds():.3f}" if first else ""
        attrs = {k: v for k, v in event.items()
                 if k not in ("event_id", "event_type", "timestamp", "task")}
        table.add_row(str(event["event_id"]), at.strftime("%H:%M:%S.%f")[:-3], elapsed,
                      style_event(event["event_type"]),
                      escape(summarize(event["event_type"], attrs)))
    console().print(table)


@workflow.command()
@click.argument("workflow_id")
@click.argument("name")
@click.argument("args", nargs=-1, metavar="[ARG_JSON]...")
@_api_options
def signal(workflow_id: str, name: str, args: tuple[str, ...], api_url: str,
           as_json: bool) -> None:
    """Send signal NAME with JSON arguments."""
    answer = _call(api_url, "POST", _wf(workflow_id, "signals", name),
                   {"args": _parse_args(args)})
    if as_json:
        print_json(answer)
    else:
        click.echo(f"signalled {workflow_id}: {name}")


@workflow.command()
@click.argument("workflow_id")
@click.argument("name")
@click.argument("args", nargs=-1, metavar="[ARG_JSON]...")
@_api_options
def query(workflow_id: str, name: str, args: tuple[str, ...], api_url: str,
          as_json: bool) -> None:
    """Ask query NAME; print its JSON result."""
    answer = _call(api_url, "POST", _wf(workflow_id, "queries", name),
                   {"args": _parse_args(args)})
    print_json(answer if as_json else answer["result"])


@workflow.command()
@click.argument("workflow_id")
@click.argument("name")
@click.argument("args", nargs=-1, metavar="[ARG_JSON]...")
@_api_options
def update(workflow_id: str, name: str, args: tuple[str, ...], api_url: str,
           as_json: bool) -> None:
    """Send update NAME with JSON arguments and print its result."""
    answer = _call(api_url, "POST", _wf(workflow_id, "updates", name),
                   {"args": _parse_args(args)})
    print_json(answer if as_json else answer.get("result"))


@workflow.command(name="update-with-start")
@click.argument("workflow_type")
@click.argument("args", nargs=-1, metavar="[ARG_JSON]...")
@click.option("--id", "workflow_id", required=True, help="Workflow id to start or attach to.")
@click.option("--update", "update_name", required=True, help="The update to run.")
@click.option("--update-arg", "update_args", multiple=True, metavar="ARG_JSON",
              help="An argument of the update (repeat for more).")
@click.option("--id-conflict-policy", type=click.Choice(["use_existing", "fail"]),
              default="use_existing", show_default=True,
              help="The id is running: update that run, or fail.")
@_api_options
def update_with_start(workflow_type: str, args: tuple[str, ...], workflow_id: str,
                      update_name: str, update_args: tuple[str, ...], id_conflict_policy: str,
                      api_url: str, as_json: bool) -> None:
    """Start a WORKFLOW_TYPE workflow (or attach to the running one) and run --update on it;
    print the update's result."""
    answer = _call(api_url, "POST", _wf(workflow_id, "update-with-start"), {
        "workflow_type": workflow_type, "args": _parse_args(args), "update": update_name,
        "update_args": _parse_args(update_args), "id_conflict_policy": id_conflict_policy})
    print_json(answer if as_json else answer.get("result"))


@workflow.command()
@click.argument("workflow_id")
@click.option("--reason", help="Recorded in history.")
@_api_options
def cancel(workflow_id: str, reason: str | None, api_url: str, as_json: bool) -> None:
    """Request cancellation (the workflow sees CancelledError and may clean up)."""
    answer = _call(api_url, "POST", _wf(workflow_id, "cancel"), {"reason": reason})
    if as_json:
        print_json(answer)
    else:
        click.echo(f"cancellation requested for {workflow_id}")


@workflow.command()
@click.argument("workflow_id")
@click.option("--reason", help="Recorded in history.")
@_api_options
def terminate(workflow_id: str, reason: str | None, api_url: str, as_json: bool) -> None:
    """End the workflow now, without running any more of its code."""
    answer = _call(api_url, "POST", _wf(workflow_id, "terminate"), {"reason": reason})
    if as_json:
        print_json(answer)
    else:
        click.echo(f"terminated {workflow_id}")


@workflow.command()
@click.argument("workflow_id")
@click.option("--timeout", type=float, help="Give up after this many seconds.")
@_api_options
def result(workflow_id: str, timeout: float | None, api_url: str, as_json: bool) -> None:
    """Wait for the workflow to close; print its result (exit 1 unless it completed)."""
    began = time.monotonic()
    deadline = None if timeout is None else began + timeout
    pause = 0.2
    while True:
        try:
            answer = client(api_url).request("GET", _wf(workflow_id))
        except ApiError as exc:
            # an event or schedule firing may not have started it yet: wait a little
            waited = time.monotonic() - began
            if exc.code != "workflow_not_found" or waited > min(NOT_STARTED_GRACE,
                                                                 timeout or NOT_STARTED_GRACE):
                _fail(str(exc))
            time.sleep(pause)
            continue
        if answer["status"] != Status.RUNNING:
            break
        if deadline is not None and time.monotonic() >= deadline:
            _fail(f"workflow {workflow_id!r} still running after {timeout:g}s")
        time.sleep(pause)
        pause = min(pause * 1.5, 2.0)
    if as_json:
        print_json(answer)
    elif answer["status"] == Status.COMPLETED:
        print_json(answer["result"])
    if answer["status"] != Status.COMPLETED:
        error = answer.get("error") or {}
        kind = f"{error['type']}: " if error.get("type") else ""
        detail = f": {kind}{error.get('message', '')}" if error else ""
        _fail(f"workflow {workflow_id!r} {answer['status'].lower()}{detail}")


@workflow.command(name="list")
@click.option("--status", type=click.Choice([str(s) for s in Status]), help="Only this status.")
@click.option("--type", "workflow_type", help="Only this workflow type.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@_api_options
def list_(status: str | None, workflow_type: str | None, limit: int, api_url: str,
          as_json: bool) -> None:
    """List workflows, newest first."""
    rows: list[dict[str, Any]] = []
    token: str | None = None
    while len(rows) < limit:
        page = _call(api_url, "GET", "/workflows",
                     query={"status": status, "workflow_type": workflow_type,
                            "limit": min(100, limit - len(rows)), "next_token": token})
        rows += page["workflows"]
        token = page.get("next_token")
        if not token:
            break
    rows = rows[:limit]
    if as_json:
        print_json({"workflows": rows, "next_token": token if len(rows) >= limit else None})
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("workflow id", "type", "status", "started", "closed", "custom status"):
        table.add_column(column)
    for row in rows:
        custom = row.get("custom_status")
        table.add_row(escape(row["workflow_id"]), escape(row["workflow_type"]),
                      f"[{STATUS_STYLES.get(row['status'], 'white')}]{row['status']}[/]",
                      short_time(row.get("start_time")), short_time(row.get("close_time")),
                      "" if custom is None else escape(json.dumps(custom)))
    screen = console()
    screen.print(table)
    if not rows:
        screen.print("(no workflows)")


@cli.group()
def callback() -> None:
    """Complete, fail or heartbeat a workflow's callback by its token."""


def _settle(api_url: str, token: str, body: dict[str, Any], as_json: bool, done: str) -> None:
    answer = _call(api_url, "POST", "/callbacks/" + segment(token), body)
    if as_json:
        print_json(answer)
    else:
        click.echo(done)


@callback.command(name="complete")
@click.argument("token")
@click.argument("result", metavar="[RESULT_JSON]", required=False)
@_api_options
def callback_complete(token: str, result: str | None, api_url: str, as_json: bool) -> None:
    """Complete the callback TOKEN with RESULT_JSON (not JSON: a plain string)."""
    value = _parse_args((result,))[0] if result is not None else None
    _settle(api_url, token, {"status": "success", "result": value}, as_json,
            "callback completed")


@callback.command(name="fail")
@click.argument("token")
@click.argument("message")
@click.option("--type", "error_type", help='Error type (default "CallbackFailure").')
@_api_options
def callback_fail(token: str, message: str, error_type: str | None, api_url: str,
                  as_json: bool) -> None:
    """Fail the callback TOKEN: the workflow's `await cb` raises CallbackError(MESSAGE)."""
    error: dict[str, Any] = {"message": message}
    if error_type:
        error["type"] = error_type
    _settle(api_url, token, {"status": "failure", "error": error}, as_json, "callback failed")


@callback.command(name="heartbeat")
@click.argument("token")
@_api_options
def callback_heartbeat(token: str, api_url: str, as_json: bool) -> None:
    """Tell the workflow the holder of callback TOKEN is still working."""
    _settle(api_url, token, {"status": "heartbeat"}, as_json, "callback heartbeat sent")


@cli.group()
def schedule() -> None:
    """Create, list and delete recurring schedules (EventBridge Scheduler)."""


@schedule.command(name="create")
@click.argument("name")
@click.argument("workflow_type")
@click.argument("args", nargs=-1, metavar="[ARG_JSON]...")
@click.option("--cron", help='Six cron fields, e.g. "0 3 * * ? *" (03:00 daily).')
@click.option("--rate", help='e.g. "5 minutes", "1 hour", "2 days".')
@click.option("--overlap", type=click.Choice(["skip", "allow_all"]), default="skip",
              show_default=True, help="skip: start nothing while the previous run is RUNNING.")
@click.option("--timezone", default="UTC", show_default=True,
              help="IANA time zone the cron expression is read in.")
@_api_options
def schedule_create(name: str, workflow_type: str, args: tuple[str, ...], cron: str | None,
                    rate: str | None, overlap: str, timezone: str, api_url: str,
                    as_json: bool) -> None:
    """Start WORKFLOW_TYPE with JSON arguments on every firing of --cron or --rate."""
    if (cron is None) == (rate is None):
        _fail("give exactly one of --cron and --rate")
    body: dict[str, Any] = {"name": name, "workflow_type": workflow_type,
                            "args": _parse_args(args), "overlap": overlap,
                            "timezone": timezone}
    body.update({"cron": cron} if cron is not None else {"rate": rate})
    answer = _call(api_url, "POST", "/schedules", body)
    if as_json:
        print_json(answer)
    else:
        click.echo(f"created schedule {answer['name']}: {answer['expression']} "
                   f"({answer['timezone']}), next firing {answer['next_fire_time']}")


@schedule.command(name="list")
@_api_options
def schedule_list(api_url: str, as_json: bool) -> None:
    """List schedules with their next and last firings."""
    answer = _call(api_url, "GET", "/schedules")
    if as_json:
        print_json(answer)
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("name", "workflow type", "expression", "overlap", "next firing",
                   "last workflow", "fired", "skipped"):
        table.add_column(column)
    for row in answer["schedules"]:
        table.add_row(escape(row["name"]), escape(row["workflow_type"]),
                      escape(f"{row['expression']} {row['timezone']}"), row["overlap"],
                      short_time(row.get("next_fire_time")),
                      escape(row.get("last_workflow_id") or ""), str(row["fired"]),
                      str(row["skipped"]))
    screen = console()
    screen.print(table)
    if not answer["schedules"]:
        screen.print("(no schedules)")


@schedule.command(name="delete")
@click.argument("name")
@_api_options
def schedule_delete(name: str, api_url: str, as_json: bool) -> None:
    """Delete schedule NAME: its firings stop (runs already started go on)."""
    _call(api_url, "DELETE", "/schedules/" + segment(name))
    if as_json:
        print_json({"deleted": name})
    else:
        click.echo(f"deleted schedule {name}")


@cli.group()
def event() -> None:
    """Publish events to the bus (what EventTriggers start workflows from)."""


@event.command(name="put")
@click.argument("detail", metavar="DETAIL_JSON", default="{}")
@click.option("--source", required=True, help="The event's source, e.g. shop.")
@click.option("--detail-type", required=True, help="The event's detail-type, e.g. OrderPlaced.")
@_api_options
def event_put(detail: str, source: str, detail_type: str, api_url: str, as_json: bool) -> None:
    """Publish one event (EventBridge PutEvents) with the JSON object DETAIL_JSON."""
    try:
        parsed = json.loads(detail)
    except ValueError as exc:
        _fail(f"DETAIL_JSON is not JSON: {exc}")
    if not isinstance(parsed, dict):
        _fail("DETAIL_JSON must be a JSON object")
    answer = _call(api_url, "POST", "/events", {"Entries": [
        {"Source": source, "DetailType": detail_type, "Detail": json.dumps(parsed)}]})
    if as_json:
        print_json(answer)
        return
    entry = answer["Entries"][0]
    if answer.get("FailedEntryCount"):
        _fail(f"event refused: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
    click.echo(f"published event {entry['EventId']} ({source}, {detail_type})")


@cli.command()
@click.argument("app")
@click.argument("history_file", metavar="HISTORY.json", type=click.File("r"))
def replay(app: str, history_file: Any) -> None:
    """Check APP's current code against a recorded history (exit 1 on divergence).

    HISTORY.json is what `ostinato workflow history ID --json` (or GET
    /workflows/{id}/history) returns.
    """
    from .._core.definitions import load_app
    from .._core.errors import NonDeterminismError, UnknownTypeError
    from .._core.replay import check_document

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # APP is importable from the current directory
    try:
        doc = json.load(history_file)
    except ValueError as exc:
        _fail(f"{history_file.name} is not JSON: {exc}")
    try:
        application = load_app(app)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        _fail(f"cannot load app {app!r}: {exc}")
    workflow_id = doc.get("workflow_id", "?") if isinstance(doc, dict) else "?"
    try:
        check_document(application, doc)
    except NonDeterminismError as exc:
        _fail(f"workflow {workflow_id!r} diverges from its history: {exc}")
    except UnknownTypeError as exc:
        _fail(f"{exc} in {app!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        _fail(f"{history_file.name} is not an ostinato history document: {exc}")
    count = len(doc.get("events", []))
    click.echo(f"ok: {count} events of workflow {workflow_id!r} replay against {app}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="ostinato", standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # one line, never a traceback
        if os.environ.get("OSTINATO_DEBUG"):
            raise
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
