"""What a test environment's services hold, read alike on either backend.

Tests that check what is stored or sent (item sizes, envelopes, no plaintext) read it here:
on moto through boto3 (a paginated scan of the table, the payload bucket's objects, the SQS
bodies and Scheduler inputs the environment's clients send), on the memory backend from the
memory table (`raw_items`: the same DynamoDB JSON a scan returns), the memory bucket and the
memory clients' calls. `kms_for` gives what a `KmsEncryption` codec calls on each.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any

import boto3

import ostinato
from ostinato._core.items import raw_item_size
from ostinato._engine.payloads import Payloads
from ostinato._local.memory.kms import MemoryKms
from ostinato._local.memory.store import MemoryStore, raw_items
from ostinato.testing import BACKEND_ENV, DEFAULT_BACKEND

REGION = "us-east-1"


def backend_in_use() -> str:
    """The backend an environment that names none runs on (as `WorkflowEnvironment` picks)."""
    return os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND


# -- the table ---------------------------------------------------------------------------------
def items(env: Any) -> list[dict[str, Any]]:
    """Every item of the workflow table, in DynamoDB JSON."""
    if env.backend == "memory":
        return raw_items(env.runtime.store)
    ddb = boto3.client("dynamodb", region_name=REGION)
    pages = ddb.get_paginator("scan").paginate(TableName=env.settings.table_name)
    return [item for page in pages for item in page["Items"]]


def head_item(env: Any, workflow_id: str) -> dict[str, Any]:
    (head,) = [i for i in items(env)
               if i["pk"]["S"] == f"W#{workflow_id}" and i["sk"]["S"] == "HEAD"]
    return head


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: attribute names plus values."""
    return raw_item_size(item)


def stored_bytes(item: dict[str, Any]) -> bytes:
    """All of an item's values, as bytes (to look for plaintext in)."""
    return b"".join(raw if kind == "B" else json.dumps(raw, ensure_ascii=False).encode()
                    for value in item.values() for kind, raw in value.items())


# -- the payload bucket --------------------------------------------------------------------------
def objects(env: Any) -> dict[str, bytes]:
    """Every object of the payload bucket by key."""
    if env.backend == "memory":
        bucket = env.runtime.payloads.store
        return {key: bucket.get(key) for key in bucket.object_keys()}
    s3 = boto3.client("s3", region_name=REGION)
    name = env.settings.payload_bucket
    listed = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name)
              for o in page.get("Contents", [])]
    return {o["Key"]: s3.get_object(Bucket=name, Key=o["Key"])["Body"].read() for o in listed}


def put_object(env: Any, key: str, data: bytes) -> None:
    if env.backend == "memory":
        env.runtime.payloads.store.put(key, data)
    else:
        boto3.client("s3", region_name=REGION).put_object(
            Bucket=env.settings.payload_bucket, Key=key, Body=data)


def delete_object(env: Any, key: str) -> None:
    if env.backend == "memory":
        env.runtime.payloads.store.delete(key)
    else:
        boto3.client("s3", region_name=REGION).delete_object(
            Bucket=env.settings.payload_bucket, Key=key)


# -- what is sent --------------------------------------------------------------------------------
def _one(params: dict[str, Any]) -> list[str]:
    return [params["MessageBody"]]


def _batch(params: dict[str, Any]) -> list[str]:
    return [entry["MessageBody"] for entry in params["Entries"]]


def _schedule(params: dict[str, Any]) -> list[str]:
    return [params["Target"]["Input"]]


class Sent:
    """Every SQS body and Scheduler input the environment's clients send, as sent."""

    def __init__(self, env: Any) -> None:
        self.bodies: list[str] = []
        calls = [(env.sqs, "sqs.SendMessage", "send_message", _one),
                 (env.sqs, "sqs.SendMessageBatch", "send_message_batch", _batch),
                 (env.scheduler, "scheduler.CreateSchedule", "create_schedule", _schedule)]
        for client, operation, method, bodies in calls:
            if env.backend == "memory":  # the memory clients: record each call's bodies
                setattr(client, method, self._recording(getattr(client, method), bodies))
            else:
                client.meta.events.register(f"provide-client-params.{operation}",
                                            self._registered(bodies))

    def _registered(self, bodies: Callable[[dict[str, Any]], list[str]],
                    ) -> Callable[..., None]:
        def hook(params: dict[str, Any], **_: Any) -> None:
            self.bodies.extend(bodies(params))

        return hook

    def _recording(self, call: Callable[..., Any],
                   bodies: Callable[[dict[str, Any]], list[str]]) -> Callable[..., Any]:
        @functools.wraps(call)
        def recorded(**params: Any) -> Any:
            self.bodies.extend(bodies(params))
            return call(**params)

        return recorded

    @property
    def largest(self) -> int:
        return max(len(b.encode()) for b in self.bodies)


# -- KMS, and a reader without the codec ---------------------------------------------------------
def kms_for(backend: str) -> Any:
    """The KMS client a `KmsEncryption` codec is given: the memory KMS on the memory backend;
    None on moto (the codec makes a boto3 client inside moto's mock on first use)."""
    return MemoryKms().client() if backend == "memory" else None


def kms_client(codec_client: Any) -> Any:
    """The client to create keys with: the codec's, or boto3's under moto."""
    return codec_client or boto3.client("kms", region_name=REGION)


def bare_client(env: Any) -> ostinato.Client:
    """A client of the environment's stack configured with no codec."""
    if env.backend == "moto":
        return ostinato.Client(env.settings)
    payloads = Payloads(None, env.runtime.payloads.store)
    return ostinato.Client(env.settings, payloads=payloads,
                           store=MemoryStore(payloads, shares=env.runtime.store))
