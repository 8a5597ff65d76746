"""Where moto's emulation departs from AWS in a way the engine can see, put right.

FIFO redelivery order (moto 5.2.5): when several messages of one group were received
together and their visibility timeout ran out, moto's `ReceiveMessage` frees the group only
as it walks past each of them, so it skips the group's first message and returns the later
ones before it. SQS returns them in order again. A dropped `ReceiveMessage` reply (the
messages stay in flight until the timeout) is enough to reorder a workflow's signals.
"""

from __future__ import annotations

from typing import Any

_installed = False


def fix_fifo_redelivery_order() -> None:
    """Before each receive, free the groups of messages whose visibility timeout ran out."""
    global _installed
    if _installed:
        return
    from moto.sqs.models import SQSBackend

    original = SQSBackend.receive_message

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        if queue.fifo_queue:
            for message in [m for m in queue.pending_messages if m.visible]:
                queue.pending_messages.discard(message)
        return original(self, queue_name, *args, **kwargs)

    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    _installed = True
