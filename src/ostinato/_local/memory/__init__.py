"""The in-memory backend: DynamoDB, SQS, Scheduler, EventBridge and S3 semantics in memory.

- `store.MemoryStore`: the `Store` port, with the DynamoDB adapter's conditions and conflicts;
- `seed.MemStore` / `seed.MemTransport`: the bare stand-ins the benchmarks time the engine on.

The contract suite (`tests/contract/`) runs the same checks on these and on the AWS adapters
(moto, DynamoDB Local), so the two cannot drift.
"""

from __future__ import annotations

from .seed import MemStore, MemTransport
from .store import MemoryStore

__all__ = ["MemStore", "MemTransport", "MemoryStore"]
