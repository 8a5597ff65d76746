"""Lambda entry point: see ostinato._api.routes.handler (the HTTP API)."""

from ostinato._api.routes import handler

__all__ = ["handler"]
