"""`KmsEncryption`: envelope encryption of payloads with AWS KMS data keys and AES-256-GCM.

Each payload is encrypted with a data key from KMS `GenerateDataKey`; the data key, encrypted
by KMS, travels in the payload's metadata with the key id, the algorithm and the IV, so any
reader allowed to `Decrypt` with that key reads it, whatever key the writer is configured with
now: keys rotate without re-encrypting history. A data key is reused for `reuse_seconds`
(and at most `max_uses` payloads) in one process, so encrypting does not cost a KMS call per
payload; decrypted data keys are kept likewise. boto3 and `cryptography` are imported on
first use only (handler cold starts do not pay for them).
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from .._core.errors import PayloadIntegrityError

ALGORITHM = "AES-256-GCM"
#: Authenticated with every payload: a ciphertext cannot be passed off as another scheme's.
AAD = b"ostinato-payload-v1"


class KmsEncryption:
    """Encrypt every payload under the KMS key `key_id` (an id, ARN or alias)."""

    name = "kms"

    def __init__(self, key_id: str, *, region: str | None = None, client: Any = None,
                 reuse_seconds: float = 300.0, max_uses: int = 10_000) -> None:
        if not key_id:
            raise ValueError("KmsEncryption needs the id, ARN or alias of a KMS key")
        self.key_id = key_id
        self.region = region
        self._client = client
        self.reuse_seconds = reuse_seconds
        self.max_uses = max_uses
        self._lock = threading.Lock()
        self._current: tuple[bytes, bytes, str, float, int] | None = None
        self._plain_keys: OrderedDict[bytes, bytes] = OrderedDict()

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("kms", region_name=self.region or os.environ.get(
                "AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
        return self._client

    def _data_key(self) -> tuple[bytes, bytes, str]:
        with self._lock:
            now = time.monotonic()
            current = self._current
            if current is None or now - current[3] > self.reuse_seconds or (
                    current[4] >= self.max_uses):
                answer = self.client.generate_data_key(KeyId=self.key_id, KeySpec="AES_256")
                current = (answer["Plaintext"], answer["CiphertextBlob"], answer["KeyId"],
                           now, 0)
                self._remember(answer["CiphertextBlob"], answer["Plaintext"])
            self._current = (*current[:4], current[4] + 1)
            return current[0], current[1], current[2]

    def _plain_key(self, encrypted: bytes, key_id: str) -> bytes:
        with self._lock:
            if encrypted in self._plain_keys:
                self._plain_keys.move_to_end(encrypted)
                return self._plain_keys[encrypted]
        try:
            plain: bytes = self.client.decrypt(CiphertextBlob=encrypted,
                                               KeyId=key_id)["Plaintext"]
        except self.client.exceptions.InvalidCiphertextException:
            raise PayloadIntegrityError(f"KMS refused the payload's data key (key {key_id})",
                                        ref=key_id) from None
        with self._lock:
            self._remember(encrypted, plain)
        return plain

    def _remember(self, encrypted: bytes, plain: bytes) -> None:
        """Keep a data key (the caller holds the lock): reading what this process wrote, or
        read before, costs no KMS call."""
        self._plain_keys[encrypted] = plain
        while len(self._plain_keys) > 256:
            self._plain_keys.popitem(last=False)

    def encode(self, data: bytes) -> tuple[bytes, dict[str, str]]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key, encrypted_key, key_id = self._data_key()
        iv = os.urandom(12)
        sealed = AESGCM(key).encrypt(iv, data, AAD)
        return sealed, {"key_id": key_id, "alg": ALGORITHM,
                        "iv": base64.b64encode(iv).decode(),
                        "dk": base64.b64encode(encrypted_key).decode()}

    def decode(self, data: bytes, meta: dict[str, str]) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if meta.get("alg") != ALGORITHM:
            raise PayloadIntegrityError(f"unknown payload encryption {meta.get('alg')!r}")
        try:
            key = self._plain_key(base64.b64decode(meta["dk"]), meta["key_id"])
            return AESGCM(key).decrypt(base64.b64decode(meta["iv"]), data, AAD)
        except (InvalidTag, KeyError, ValueError):
            raise PayloadIntegrityError(
                f"an encrypted payload (key {meta.get('key_id')}) fails authentication: it "
                "was modified", ref=str(meta.get("key_id", ""))) from None

    def __repr__(self) -> str:
        return f"KmsEncryption({self.key_id!r})"
