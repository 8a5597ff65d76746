"""Lambda entry point: see ostinato.lambda_handlers.timer."""

from ostinato.lambda_handlers import timer as handler

__all__ = ["handler"]
