"""One runtime per process (Lambda container): settings, app, store, transport, engine.

Built lazily from the environment on first use, so importing a handler stays cheap; the test
environment and `ostinato dev` install their own with `install()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ._aws.settings import Settings
from ._aws.store import Store
from ._aws.transport import Transport
from ._client.client import Client
from ._core.definitions import App, load_app
from ._engine.decider import Engine


@dataclass
class Runtime:
    settings: Settings
    app: App
    store: Store
    transport: Transport
    engine: Engine
    client: Client


_current: Runtime | None = None


def build(settings: Settings, app: App, clock: object = None, client_cls: type[Client] = Client
          ) -> Runtime:
    import time

    tick = clock or time.time
    store = Store(settings.table_name, settings.region)
    transport = Transport(settings, clock=tick)  # type: ignore[arg-type]
    engine = Engine(app, store, transport, clock=tick)  # type: ignore[arg-type]
    client = client_cls(settings, app=app, store=store, transport=transport,
                        clock=tick)  # type: ignore[arg-type]
    return Runtime(settings, app, store, transport, engine, client)


def get() -> Runtime:
    global _current
    if _current is None:
        _current = build(Settings.from_env(), load_app(os.environ["OSTINATO_APP"]))
    return _current


def install(runtime: Runtime | None) -> None:
    global _current
    _current = runtime
