"""How workflow heads are listed: the index shards, their keys, and page tokens.

Shared by the DynamoDB adapter and the in-memory store, so both hand out (and refuse) the
same page tokens: `{"shards": {"<shard>": <DynamoDB key of the last head seen, or None>}}`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .errors import InvalidPageTokenError

#: Index shards per status, per type and overall (DESIGN: no partition per status value).
LIST_SHARDS = 8
#: A result larger than this stays in the run's last batch instead of the head (and indexes).
HEAD_INLINE_BYTES = 32 * 1024


def shard_of(workflow_id: str) -> int:
    """The list-index shard of a workflow id (stable across its runs)."""
    return int.from_bytes(hashlib.sha256(workflow_id.encode()).digest()[:4], "big") % LIST_SHARDS


def list_keys(workflow_id: str, status: str, workflow_type: str) -> dict[str, str]:
    """The head's index key attributes: by status (`ls`), by type (`lt`), by start (`la`)."""
    shard = shard_of(workflow_id)
    return {"ls": f"{status}#{shard}", "lt": f"{workflow_type}#{shard}", "la": str(shard)}


def page_starts(token: Any, key_attr: str, prefix: str, low: float, high: float,
                ) -> dict[int, Any]:
    """The per-shard start keys of a page token, checked (a forged one is refused, never
    sent to DynamoDB): `InvalidPageTokenError`."""
    starts = token.get("shards") if isinstance(token, dict) else None
    if not isinstance(starts, dict) or not starts:
        raise InvalidPageTokenError("not a page token of this listing")
    out: dict[int, Any] = {}
    for name, key in starts.items():
        if not (isinstance(name, str) and name.isdigit() and int(name) < LIST_SHARDS):
            raise InvalidPageTokenError("not a page token of this listing")
        shard = int(name)
        if key is not None:
            try:
                ok = (set(key) == {"pk", "sk", key_attr, "start_time"}
                      and key["pk"]["S"].startswith("W#") and key["sk"] == {"S": "HEAD"}
                      and key[key_attr] == {"S": f"{prefix}{shard}"}
                      and low <= float(key["start_time"]["N"]) <= high)
            except (TypeError, KeyError, AttributeError, ValueError):
                ok = False
            if not ok:
                raise InvalidPageTokenError("not a page token of this listing")
        out[shard] = key
    return out
