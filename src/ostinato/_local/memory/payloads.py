"""S3 objects in memory: the `PayloadStore` port (large payloads kept out of history)."""

from __future__ import annotations

import threading

from ..._core.errors import PayloadIntegrityError

BUCKET = "ostinato-payloads"


class MemoryPayloads:
    """Objects by key in one bucket; a reference is the object's key, as the S3 adapter's
    (`_aws/payloads.S3PayloadStore`) is, so stored envelopes read the same on either.

    A put of an existing key replaces the object, as S3 does; `get` of a key that names no
    object raises `PayloadIntegrityError` naming it (the adapter's answer to NoSuchKey).
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
        return key

    def get(self, ref: str) -> bytes:
        with self._lock:
            data = self._objects.get(ref)
        if data is None:
            raise PayloadIntegrityError(
                f"payload object {ref!r} is missing from bucket {self.bucket!r}", ref=ref)
        return data

    def delete(self, key: str) -> None:
        """DeleteObject (deleting a missing key changes nothing, as on S3)."""
        with self._lock:
            self._objects.pop(key, None)

    def object_keys(self) -> list[str]:
        """ListObjectsV2: every key, in S3's order (by UTF-8 bytes)."""
        with self._lock:
            return sorted(self._objects, key=str.encode)
