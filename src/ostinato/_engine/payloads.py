"""The payload pipeline every adapter writes and reads payloads through.

    JSON text -> codecs (compress, encrypt) -> over the threshold: the payload store (S3),
    keeping a reference {key, sha256, size} -> the envelope text or bytes (`_core/envelope`)

and back, verifying the reference. Adapters (the DynamoDB store, SQS, Scheduler, the memory
backend) hold one `Payloads` and call `seal`/`open` on every blob they store or send: a head's
arguments, result, failure and custom status, a history batch body, a message body, an update
outcome, heartbeat details, a schedule's arguments. Plain JSON with no codec and under the
threshold passes unchanged, so existing data and small payloads look exactly as before.

Without a payload store nothing is offloaded: a payload over `limit` then raises
`PayloadTooLargeError` naming it, before the adapter writes anything.
"""

from __future__ import annotations

import hashlib
import zlib

from .._core import codecs as _codecs
from .._core.envelope import Envelope, Ref, is_sealed, parse
from .._core.errors import PayloadIntegrityError, PayloadTooLargeError
from .._core.items import ITEM_CHUNK
from .ports import PayloadStore

#: Encoded payloads larger than this go to the payload store (DESIGN.md §2 "Payloads").
DEFAULT_THRESHOLD = 128 * 1024
#: Without a payload store, what one stored or sent payload may be (the former
#: MAX_PAYLOAD_BYTES): well inside an SQS message (1 MiB) and a DynamoDB item (400 KB).
INLINE_LIMIT = 200 * 1024
#: Key prefixes: what history, heads and schedules reference (kept as long as they are), and
#: what only queued messages reference (template.yaml expires these after 15 days: a queue
#: keeps a message 14 days at most).
STORED = "payloads/"
IN_FLIGHT = "messages/"


class Payloads:
    """One codec chain and one optional payload store (see the module docstring)."""

    def __init__(self, codec: _codecs.CodecSpec = None, store: PayloadStore | None = None,
                 threshold: int = DEFAULT_THRESHOLD) -> None:
        self.codecs = _codecs.chain(codec)
        self.store = store
        self.threshold = threshold
        self._decoders = {**_codecs.BUILTIN, **{c.name: c for c in self.codecs}}

    @property
    def offloads(self) -> bool:
        return self.store is not None

    # -- writing ------------------------------------------------------------------------------
    def _encode(self, data: bytes, compressed: bool) -> tuple[bytes, list[tuple[str, dict[
            str, str]]]]:
        applied = []
        for codec in self.codecs:
            if compressed and getattr(codec, "compresses", False):
                continue  # the adapter compressed already (history batches)
            data, meta = codec.encode(data)
            applied.append((codec.name, dict(meta)))
        return data, applied

    def _offload(self, data: bytes, what: str, threshold: int | None, limit: int | None,
                 prefix: str = STORED, text: bool = False) -> tuple[Ref | None, bytes]:
        """(a reference, b"") for `data` put in the store, or (None, data) to keep inline.
        Sizes are what is stored: in text form, the data's base64."""
        size = -(-len(data) // 3) * 4 if text else len(data)
        if size <= (self.threshold if threshold is None else threshold):
            return None, data
        if self.store is None:
            if limit is not None and size > limit:
                raise PayloadTooLargeError(f"{what} (no payload bucket configured)", size,
                                           limit)
            return None, data
        key = f"{prefix}{hashlib.sha256(data).hexdigest()}"  # content-addressed: idempotent
        return Ref.of(self.store.put(key, data), data), b""

    def seal(self, text: str, what: str, limit: int | None = INLINE_LIMIT,
             threshold: int | None = None, prefix: str = STORED) -> str:
        """`text` (JSON) as it is to be stored or sent: unchanged, or an envelope; an
        offloaded payload is kept under `prefix` (`STORED`, or `IN_FLIGHT` for messages)."""
        raw = text.encode()
        if not self.codecs and len(raw) <= (self.threshold if threshold is None else threshold):
            return text
        data, applied = self._encode(raw, compressed=False)
        ref, inline = self._offload(data, what, threshold, limit, prefix, text=bool(applied))
        if ref is None and not applied:
            return text  # no codec, no store: as before
        return Envelope(applied, ref, inline).to_text()

    def seal_bytes(self, data: bytes, what: str, compressed: bool = False) -> bytes:
        """Bytes (a compressed history batch) as they are to be stored: unchanged, or an
        envelope. Never refused for size: the caller splits what stays inline."""
        if not self.codecs and len(data) <= self.threshold:
            return data
        encoded, applied = self._encode(data, compressed)
        ref, inline = self._offload(encoded, what, None, None)
        if ref is None and not applied:
            return data  # no codec, no store: as before
        return Envelope(applied, ref, inline).to_bytes()

    def seal_batch(self, body: str) -> list[bytes]:
        """A history batch's JSON as its items hold it: zlib-compressed, through the codecs
        (and the store when over the threshold), split into `ITEM_CHUNK`-byte parts."""
        data = self.seal_bytes(zlib.compress(body.encode(), 6), "history batch",
                               compressed=True)
        return [data[i:i + ITEM_CHUNK] for i in range(0, len(data), ITEM_CHUNK)] or [b""]

    def keeps_inline(self, size: int) -> bool:
        """Whether a batch body of `size` bytes is stored as it is however it compresses: no
        codec, and even uncompressed (zlib's worst case) under the threshold, in one item.
        Then a store may keep the JSON itself (the adapter's `body` form) and skip zlib."""
        bound = size + (size >> 12) + (size >> 14) + (size >> 25) + 13  # zlib compressBound
        return not self.codecs and bound <= min(self.threshold, ITEM_CHUNK)

    # -- reading ------------------------------------------------------------------------------
    def open_batch(self, parts: list[bytes]) -> str:
        """The JSON `seal_batch` was given, from its parts in order."""
        data = b"".join(parts) if len(parts) > 1 else bytes(parts[0])
        return zlib.decompress(self.open_bytes(data)).decode()

    def open(self, stored: str) -> str:
        """The JSON text `seal` was given (plain JSON passes as is)."""
        if not is_sealed(stored):
            return stored
        try:
            return self._open(parse(stored)).decode()
        except UnicodeDecodeError:
            raise PayloadIntegrityError("a decoded payload is not UTF-8 text") from None

    def open_bytes(self, stored: bytes) -> bytes:
        return self._open(parse(stored)) if is_sealed(stored) else stored

    def _open(self, envelope: Envelope) -> bytes:
        data = envelope.data
        if envelope.ref is not None:
            if self.store is None:
                raise PayloadIntegrityError(
                    f"payload {envelope.ref.key!r} is in the payload bucket, and no bucket is "
                    "configured (OSTINATO_PAYLOAD_BUCKET)", ref=envelope.ref.key)
            data = envelope.ref.check(self.store.get(envelope.ref.key))
        for name, meta in reversed(envelope.codecs):
            codec = self._decoders.get(name)
            if codec is None:
                raise PayloadIntegrityError(
                    f"a payload was encoded with codec {name!r}, which is not configured here "
                    "(App(codec=...) / Client(codec=...))", ref=name)
            data = codec.decode(data, meta)
        return data


#: The pipeline of an adapter given none: plain JSON, nothing offloaded.
PLAIN = Payloads()
