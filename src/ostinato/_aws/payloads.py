"""S3: the stack's payload bucket (template.yaml PayloadBucket) behind the `PayloadStore` port.

Objects are written once under content-addressed keys (`payloads/<sha256>`, chosen by the
pipeline), so a retried write changes nothing; the bucket encrypts them at rest and expires
them with the stack's retention. A missing object is a `PayloadIntegrityError` naming it.
"""

from __future__ import annotations

from typing import Any

from .._core.errors import PayloadIntegrityError
from .._engine.payloads import Payloads
from .settings import Settings


class S3PayloadStore:
    """The `PayloadStore` port on one S3 bucket (boto3 client built on first use)."""

    def __init__(self, bucket: str, region: str = "us-east-1", client: Any = None) -> None:
        self.bucket = bucket
        self.region = region
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", region_name=self.region)
        return self._client

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return key

    def get(self, ref: str) -> bytes:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=ref)
        except self.client.exceptions.NoSuchKey:
            raise PayloadIntegrityError(
                f"payload object {ref!r} is missing from bucket {self.bucket!r}",
                ref=ref) from None
        body: bytes = answer["Body"].read()
        return body


def payloads_for(settings: Settings, codec: Any = None, s3: Any = None) -> Payloads:
    """The payload pipeline of a stack: `codec`, and its payload bucket when it has one."""
    bucket = settings.payload_bucket
    return Payloads(codec, S3PayloadStore(bucket, settings.region, client=s3) if bucket
                    else None)
