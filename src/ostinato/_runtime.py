"""The composition root: the one place that picks adapters and wires engine and client.

One runtime per process (Lambda container), built lazily from the environment on first use so
importing a handler stays cheap: the adapters (boto3, pynamodb), the engine and the client are
imported by `build`, and the client (`_stack_client.Client`) only made when first asked for
(the SQS handlers never are), so each handler loads what its own path needs. The test
environment and `ostinato dev` install their own runtime with `install()` (which returns the
one it replaced, to restore later).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._aws.settings import Settings
from ._core.definitions import APP_ENV, App, NoAppError, load_app

if TYPE_CHECKING:
    from ._engine import Engine
    from ._engine.payloads import Payloads
    from ._engine.ports import EventBus, PayloadStore, Store
    from ._stack_client import Client as Client


def __getattr__(name: str) -> Any:
    """`Client` lives in `_stack_client` (imported on first use); kept here by name too."""
    if name == "Client":
        from ._stack_client import Client

        return Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class Runtime:
    settings: Settings
    app: App
    store: Store
    transport: Any  # SqsTransport, or what the test environment swaps in
    payloads: Payloads  # what the handlers open received bodies with
    engine: Engine
    #: makes the client on first use of `client` (the SQS handlers never ask for one)
    make_client: Callable[[], Client] = field(repr=False)
    _client: Client | None = field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                  compare=False)

    @property
    def client(self) -> Client:
        """The runtime's client, made once, on first use, sharing the runtime's adapters."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self.make_client()
        return self._client


_current: Runtime | None = None


def build(settings: Settings, app: App, clock: Callable[[], float] | None = None,
          client_cls: type[Client] | None = None, *,
          store: Store | Callable[[Payloads], Store] | None = None,
          sqs: Any = None, scheduler_client: Any = None,
          events: EventBus | None = None, payload_store: PayloadStore | None = None) -> Runtime:
    """The runtime of the stack `settings` names: the AWS adapters (or `store`, the SQS and
    Scheduler clients and the event bus given instead: the in-memory backend gives all
    four), the engine over them and (on first use) a client of `client_cls` (default
    `Client`) sharing the adapters. A `store` that is a function is given the payload
    pipeline to store payloads through (`MemoryBackend.table`)."""
    from ._aws.observer import LambdaObserver, tracer_if_enabled
    from ._aws.payloads import payloads_for
    from ._aws.scheduler import EventBridgeScheduler
    from ._aws.store import Store as DynamoStore
    from ._aws.transport import SqsTransport
    from ._engine import Engine
    from ._engine.payloads import Payloads
    from ._engine.ports import NO_OBSERVER

    tick = clock or time.time
    if payload_store is not None:  # the in-memory backend's bucket
        payloads = Payloads(app.codec, payload_store)
    else:
        payloads = payloads_for(settings, app.codec)
    if store is None:
        store = DynamoStore(settings.table_name, settings.region, payloads)
    elif callable(store):
        store = store(payloads)
    scheduler = EventBridgeScheduler(settings, client=scheduler_client, payloads=payloads)
    transport = SqsTransport(settings, scheduler, sqs=sqs, clock=tick, payloads=payloads)
    # on Lambda: EMF metrics (and X-Ray subsegments when asked for); elsewhere, nothing
    on_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    observer = LambdaObserver(tracer=tracer_if_enabled()) if on_lambda else NO_OBSERVER
    engine = Engine(app, store, transport, clock=tick, observer=observer)

    def make_client() -> Client:
        from ._stack_client import Client

        return (client_cls or Client)(settings, app=app, store=store, transport=transport,
                                      scheduler=scheduler, events=events, clock=tick,
                                      payloads=payloads)

    return Runtime(settings, app, store, transport, payloads, engine, make_client)


def get() -> Runtime:
    global _current
    if _current is None:
        spec = os.environ.get(APP_ENV)
        if not spec:
            raise NoAppError(f"{APP_ENV} is not set: the handlers need "
                             "package.module:app to load the workflow code")
        _current = build(Settings.from_env(), load_app(spec))
    return _current


def install(runtime: Runtime | None) -> Runtime | None:
    """Make `runtime` the process's runtime; returns the previous one."""
    global _current
    previous, _current = _current, runtime
    return previous
