"""Lambda entry point: see ostinato.lambda_handlers.activity_task."""

from ostinato.lambda_handlers import activity_task as handler

__all__ = ["handler"]
