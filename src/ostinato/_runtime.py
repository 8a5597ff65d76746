"""The composition root: the one place that picks adapters and wires engine and client.

One runtime per process (Lambda container), built lazily from the environment on first use so
importing a handler stays cheap; the test environment and `ostinato dev` install their own
with `install()` (which returns the one it replaced, to restore later).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._aws import session as _session
from ._aws.eventbus import EventBridgeBus
from ._aws.payloads import S3PayloadStore
from ._aws.scheduler import EventBridgeScheduler
from ._aws.settings import Settings
from ._aws.stack import stack_outputs
from ._aws.store import Store as DynamoStore
from ._aws.transport import SqsTransport
from ._client import client as _client
from ._core.definitions import App, load_app
from ._engine import Engine
from ._engine.payloads import Payloads
from ._engine.ports import EventBus, Scheduler, Store, Transport


def payloads_for(settings: Settings, codec: Any = None, s3: Any = None) -> Payloads:
    """The payload pipeline of a stack: `codec`, and its payload bucket when it has one."""
    bucket = settings.payload_bucket
    return Payloads(codec, S3PayloadStore(bucket, settings.region, client=s3) if bucket
                    else None)


class Client(_client.Client):
    """Synchronous client of an ostinato stack (also what the HTTP API uses).

    `Client(settings)` (or `Client.from_env()`) builds the AWS adapters for the stack the
    settings name; any of `store`, `transport`, `scheduler`, `events` may be given instead.
    `codec` (default: the app's) encodes and decodes every payload (`ostinato.codecs`).
    """

    def __init__(self, settings: Settings | None = None, *, app: App | None = None,
                 codec: Any = None, store: Store | None = None,
                 transport: Transport | None = None, scheduler: Scheduler | None = None,
                 events: EventBus | None = None, clock: Callable[[], float] = time.time,
                 payloads: Payloads | None = None) -> None:
        self.settings = settings or Settings.from_env()
        if codec is None and app is not None:
            codec = app.codec
        self.payloads = payloads or payloads_for(self.settings, codec)
        scheduler = scheduler or EventBridgeScheduler(self.settings, payloads=self.payloads)
        super().__init__(
            store=store or DynamoStore(self.settings.table_name, self.settings.region,
                                       self.payloads),
            transport=transport or SqsTransport(self.settings, scheduler, clock=clock,
                                                payloads=self.payloads),
            scheduler=scheduler, events=events or EventBridgeBus(self.settings.region),
            app=app, clock=clock)

    @classmethod
    def from_env(cls, codec: Any = None) -> Client:
        """A client for the stack named by the OSTINATO_* environment variables."""
        return cls(Settings.from_env(), codec=codec)

    @classmethod
    def from_stack(cls, name: str, region: str | None = None, profile: str | None = None, *,
                   app: App | None = None, codec: Any = None) -> Client:
        """A client for the deployed stack `name`, every setting read from its CloudFormation
        outputs (DescribeStacks).

        Args:
            name: the stack's name (what `sam deploy` was given).
            region: where it is (default: AWS_REGION, AWS_DEFAULT_REGION, else the profile's).
            profile: the AWS profile whose credentials read the stack and make the client's
                SQS, Scheduler and EventBridge calls (default: AWS_PROFILE, else the default
                chain). DynamoDB calls (pynamodb) always take the default chain: to use one
                profile throughout, set AWS_PROFILE rather than pass `profile`.
            app: the workflow code, if the client should check workflow types locally.
            codec: what payloads are encoded with (default: the app's, else none).

        Raises `StackNotFoundError` for no such stack, `AwsConfigError` without credentials
        or region, `ValueError` for a stack that lacks ostinato's outputs.
        """
        aws = _session.session(profile, region)
        settings = Settings.from_outputs(stack_outputs(name, aws=aws))
        if codec is None and app is not None:
            codec = app.codec
        payloads = payloads_for(settings, codec, aws.client("s3", region_name=settings.region))
        scheduler = EventBridgeScheduler(
            settings, client=aws.client("scheduler", region_name=settings.region),
            payloads=payloads)
        return cls(settings, app=app, scheduler=scheduler, payloads=payloads,
                   transport=SqsTransport(
                       settings, scheduler, sqs=aws.client("sqs", region_name=settings.region),
                       payloads=payloads),
                   events=EventBridgeBus(
                       settings.region, client=aws.client("events", region_name=settings.region)))


@dataclass
class Runtime:
    settings: Settings
    app: App
    store: Store
    transport: Any  # SqsTransport, or what the test environment swaps in
    payloads: Payloads  # what the handlers open received bodies with
    engine: Engine
    client: Client


_current: Runtime | None = None


def build(settings: Settings, app: App, clock: Callable[[], float] | None = None,
          client_cls: type[Client] = Client) -> Runtime:
    from ._aws.observer import LambdaObserver, tracer_if_enabled
    from ._engine.ports import NO_OBSERVER

    tick = clock or time.time
    payloads = payloads_for(settings, app.codec)
    store = DynamoStore(settings.table_name, settings.region, payloads)
    scheduler = EventBridgeScheduler(settings, payloads=payloads)
    transport = SqsTransport(settings, scheduler, clock=tick, payloads=payloads)
    # on Lambda: EMF metrics (and X-Ray subsegments when asked for); elsewhere, nothing
    on_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    observer = LambdaObserver(tracer=tracer_if_enabled()) if on_lambda else NO_OBSERVER
    engine = Engine(app, store, transport, clock=tick, observer=observer)
    client = client_cls(settings, app=app, store=store, transport=transport,
                        scheduler=scheduler, clock=tick, payloads=payloads)
    return Runtime(settings, app, store, transport, payloads, engine, client)


def get() -> Runtime:
    global _current
    if _current is None:
        spec = os.environ.get(_client.APP_ENV)
        if not spec:
            raise _client.NoAppError(f"{_client.APP_ENV} is not set: the handlers need "
                                     "package.module:app to load the workflow code")
        _current = build(Settings.from_env(), load_app(spec))
    return _current


def install(runtime: Runtime | None) -> Runtime | None:
    """Make `runtime` the process's runtime; returns the previous one."""
    global _current
    previous, _current = _current, runtime
    return previous
