"""KMS in memory: what `ostinato.codecs.KmsEncryption` calls, for the memory backend.

    kms = MemoryKms()
    key = kms.client().create_key()["KeyMetadata"]["Arn"]
    codec = KmsEncryption(key, client=kms.client())

Keys (by id, ARN or alias) each hold a secret that never leaves this object; GenerateDataKey
returns a fresh data key in plaintext and wrapped under the key's secret (AES-256-GCM, the
key id authenticated with it), and Decrypt unwraps it, naming the key, as KMS does. A wrapped
key that was altered, or that names no key here, is KMS's InvalidCiphertextException; a
Decrypt whose KeyId names another key is IncorrectKeyException. `cryptography` is imported on
first use, as the codec imports it.
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

from botocore.exceptions import ClientError

REGION = "us-east-1"
ACCOUNT = "123456789012"
_MAGIC = b"ostkms1"


class InvalidCiphertextException(ClientError):
    pass


class IncorrectKeyException(ClientError):
    pass


class NotFoundException(ClientError):
    pass


class AlreadyExistsException(ClientError):
    pass


class Exceptions:
    """`client.exceptions`, as boto3 generates it."""

    InvalidCiphertextException = InvalidCiphertextException
    IncorrectKeyException = IncorrectKeyException
    NotFoundException = NotFoundException
    AlreadyExistsException = AlreadyExistsException
    ClientError = ClientError


def _error(cls: type[ClientError], message: str, operation: str) -> ClientError:
    return cls({"Error": {"Code": cls.__name__, "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


class MemoryKms:
    """Keys and aliases of one account and region (see the module docstring)."""

    def __init__(self, region: str = REGION, account: str = ACCOUNT) -> None:
        self.region, self.account = region, account
        self._secrets: dict[str, bytes] = {}  # key id -> its 256-bit secret
        self._aliases: dict[str, str] = {}  # alias/name -> key id
        self._lock = threading.Lock()

    def arn(self, key_id: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:key/{key_id}"

    def resolve(self, key: str, operation: str) -> str:
        """The key id that `key` (an id, key ARN, alias name or alias ARN) names."""
        with self._lock:
            name = key.split(":", 5)[-1] if key.startswith("arn:") else key
            if name.startswith("alias/"):
                found = self._aliases.get(name)
            else:
                found = name.removeprefix("key/")
            if found is None or found not in self._secrets:
                raise _error(NotFoundException, f"Key '{key}' does not exist", operation)
            return found

    def client(self) -> KmsClient:
        return KmsClient(self)


class KmsClient:
    """The boto3 KMS calls KmsEncryption and the tests make."""

    exceptions = Exceptions

    def __init__(self, kms: MemoryKms) -> None:
        self._kms = kms

    def create_key(self, **_: Any) -> dict[str, Any]:
        key_id = str(uuid.uuid4())
        with self._kms._lock:
            self._kms._secrets[key_id] = os.urandom(32)
        return {"KeyMetadata": {"KeyId": key_id, "Arn": self._kms.arn(key_id),
                                "KeySpec": "SYMMETRIC_DEFAULT", "Enabled": True}}

    def create_alias(self, AliasName: str, TargetKeyId: str, **_: Any) -> dict[str, Any]:
        key_id = self._kms.resolve(TargetKeyId, "CreateAlias")
        with self._kms._lock:
            if AliasName in self._kms._aliases:
                raise _error(AlreadyExistsException, f"{AliasName} already exists",
                             "CreateAlias")
            self._kms._aliases[AliasName] = key_id
        return {}

    def generate_data_key(self, KeyId: str, KeySpec: str = "AES_256",
                          NumberOfBytes: int | None = None, **_: Any) -> dict[str, Any]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key_id = self._kms.resolve(KeyId, "GenerateDataKey")
        plain = os.urandom(NumberOfBytes or (16 if KeySpec == "AES_128" else 32))
        nonce = os.urandom(12)
        wrapped = AESGCM(self._kms._secrets[key_id]).encrypt(nonce, plain, key_id.encode())
        blob = _MAGIC + key_id.encode() + nonce + wrapped
        return {"Plaintext": plain, "CiphertextBlob": blob, "KeyId": self._kms.arn(key_id)}

    def decrypt(self, CiphertextBlob: bytes, KeyId: str | None = None,
                **_: Any) -> dict[str, Any]:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        invalid = _error(InvalidCiphertextException, "the ciphertext is invalid", "Decrypt")
        blob = bytes(CiphertextBlob)
        if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + 36 + 12 + 16:
            raise invalid
        key_id = blob[len(_MAGIC):len(_MAGIC) + 36].decode(errors="replace")
        secret = self._kms._secrets.get(key_id)
        if secret is None:
            raise invalid
        if KeyId is not None and self._kms.resolve(KeyId, "Decrypt") != key_id:
            raise _error(IncorrectKeyException, "the key is not the one the ciphertext was "
                         "encrypted under", "Decrypt")
        nonce, wrapped = blob[len(_MAGIC) + 36:len(_MAGIC) + 48], blob[len(_MAGIC) + 48:]
        try:
            plain = AESGCM(secret).decrypt(nonce, wrapped, key_id.encode())
        except InvalidTag:
            raise invalid from None
        return {"Plaintext": plain, "KeyId": self._kms.arn(key_id),
                "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
