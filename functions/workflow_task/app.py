"""Lambda entry point: see ostinato.lambda_handlers.workflow_task."""

from ostinato.lambda_handlers import workflow_task as handler

__all__ = ["handler"]
