"""Lambda entry point: see ostinato._api.handler (the HTTP API)."""

from ostinato._api import handler

__all__ = ["handler"]
