"""S3 objects in memory: the `PayloadStore` port (large payloads kept out of history)."""

from __future__ import annotations

import threading

BUCKET = "ostinato-payloads"


class MemoryPayloads:
    """Objects by key in one bucket; a reference is the object's `s3://bucket/key` URL.

    Objects are immutable once put (a put of an existing key replaces it, as S3 does); `get`
    of a reference that names no object raises `KeyError` (S3's NoSuchKey).
    """

    def __init__(self, bucket: str = BUCKET) -> None:
        self.bucket = bucket
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> str:
        if not key:
            raise ValueError("an S3 object key is not empty")
        with self._lock:
            self._objects[key] = bytes(data)
        return f"s3://{self.bucket}/{key}"

    def get(self, ref: str) -> bytes:
        prefix = f"s3://{self.bucket}/"
        if not ref.startswith(prefix):
            raise KeyError(f"not an object of bucket {self.bucket}: {ref}")
        with self._lock:
            return self._objects[ref[len(prefix):]]
