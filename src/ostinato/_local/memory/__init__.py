"""The in-memory backend: DynamoDB, SQS, Scheduler, EventBridge and S3 semantics in memory.

- `store.MemoryStore`: the `Store` port, with the DynamoDB adapter's conditions and conflicts,
  holding the adapter's items (`items.py`: payloads through the same pipeline, 400 KB items);
- `sqs.MemorySqs`: standard and FIFO queues (visibility, receive counts, redrive, groups,
  deduplication, delays); `scheduler.MemoryScheduler`: one-time and recurring schedules;
  `events.MemoryEventBridge`: rules and their SQS targets; `payloads.MemoryPayloads`: S3
  objects; `kms.MemoryKms`: the KMS calls of `KmsEncryption` (given as its client). Each
  answers the boto3 calls the AWS adapters make (`.client()`), so the adapters
  (`SqsTransport`, `EventBridgeScheduler`, `EventBridgeBus`) run on them unchanged, with no
  botocore request in between;
- `backend.MemoryBackend`: one of each, for one environment; `lambda_esm.MemoryPoller`: the
  event-source mappings invoking the `functions/` handlers;
- `seed.MemStore` / `seed.MemTransport`: the bare stand-ins the benchmarks time the engine on.

The contract suite (`tests/contract/`) runs the same checks on these and on the AWS adapters
(moto, DynamoDB Local), so the two cannot drift.
"""

from __future__ import annotations

from .backend import MemoryBackend
from .events import MemoryEventBridge
from .payloads import MemoryPayloads
from .scheduler import MemoryScheduler
from .seed import MemStore, MemTransport
from .sqs import MemorySqs
from .store import MemoryStore

__all__ = ["MemStore", "MemTransport", "MemoryBackend", "MemoryEventBridge", "MemoryPayloads",
           "MemoryScheduler", "MemorySqs", "MemoryStore"]
