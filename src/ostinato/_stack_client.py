"""`Client`: the client of one deployed stack, wired to the AWS adapters its settings name.

Part of the composition root (`_runtime.py` builds the runtime's client with it); a module of
its own so that only what uses a client loads the client and the AWS SDK behind it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._aws import session as _session
from ._aws.eventbus import EventBridgeBus
from ._aws.payloads import payloads_for
from ._aws.scheduler import EventBridgeScheduler
from ._aws.settings import Settings
from ._aws.stack import stack_outputs
from ._aws.store import Store as DynamoStore
from ._aws.transport import SqsTransport
from ._client import client as _client
from ._core.definitions import App
from ._engine.payloads import Payloads
from ._engine.ports import EventBus, Scheduler, Store, Transport


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
