"""Lambda entry point: see ostinato.lambda_handlers.api (the HTTP API)."""

from ostinato.lambda_handlers import api as handler

__all__ = ["handler"]
