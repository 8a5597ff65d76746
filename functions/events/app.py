"""Lambda entry point: see ostinato.lambda_handlers.events."""

from ostinato.lambda_handlers import events as handler

__all__ = ["handler"]
