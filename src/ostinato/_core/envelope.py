"""The payload envelope: how an encoded (or offloaded) payload is written where JSON was.

Plain JSON that needs no codec and fits the threshold is stored and sent exactly as before;
everything else is an envelope, recognisable by `MAGIC` (never the start of JSON text):

    %ost1{"c": [[codec name, {metadata}], ...], "ref": {"key", "sha256", "size"}}\\n<data>

`c` lists the codecs in the order they encoded; `<data>` is the encoded bytes (base64 in text
form, raw in bytes form), absent when `ref` names the object holding them (the payload store,
S3), whose SHA-256 and size are checked on every read. Pure: no I/O here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import PayloadIntegrityError

MAGIC = "%ost1"
MAGIC_BYTES = MAGIC.encode()


@dataclass(frozen=True)
class Ref:
    """Where offloaded bytes live and what they must hash to."""

    key: str
    sha256: str
    size: int

    @classmethod
    def of(cls, key: str, data: bytes) -> Ref:
        return cls(key, hashlib.sha256(data).hexdigest(), len(data))

    def check(self, data: bytes) -> bytes:
        """`data` if it is what this reference was made from; else `PayloadIntegrityError`."""
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != self.size or digest != self.sha256:
            raise PayloadIntegrityError(
                f"payload object {self.key!r} does not match its reference (size {len(data)}, "
                f"sha256 {digest}; expected size {self.size}, sha256 {self.sha256}): it was "
                "modified or replaced", ref=self.key)
        return data


@dataclass(frozen=True)
class Envelope:
    codecs: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    ref: Ref | None = None
    data: bytes = b""

    def header(self) -> str:
        head: dict[str, Any] = {"c": [[name, meta] for name, meta in self.codecs]}
        if self.ref is not None:
            head["ref"] = {"key": self.ref.key, "sha256": self.ref.sha256,
                           "size": self.ref.size}
        return json.dumps(head, separators=(",", ":"))

    def to_text(self) -> str:
        return f"{MAGIC}{self.header()}\n{base64.b64encode(self.data).decode()}"

    def to_bytes(self) -> bytes:
        return MAGIC_BYTES + self.header().encode() + b"\n" + self.data


def is_sealed(stored: str | bytes) -> bool:
    return (stored.startswith(MAGIC) if isinstance(stored, str)
            else stored.startswith(MAGIC_BYTES))


def parse(stored: str | bytes) -> Envelope:
    """The envelope `stored` holds (text or bytes form); `PayloadIntegrityError` if damaged."""
    raw = stored.encode() if isinstance(stored, str) else stored
    try:
        header, _, data = raw[len(MAGIC_BYTES):].partition(b"\n")
        head = json.loads(header)
        codecs = [(str(name), {str(k): str(v) for k, v in meta.items()})
                  for name, meta in head["c"]]
        ref = head.get("ref")
        if isinstance(stored, str):
            data = base64.b64decode(data, validate=True)
        return Envelope(codecs, None if ref is None else Ref(str(ref["key"]), str(
            ref["sha256"]), int(ref["size"])), data)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise PayloadIntegrityError(f"a payload envelope is damaged: {exc}") from None
