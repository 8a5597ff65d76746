"""Codecs: byte transformations every stored or sent payload passes through (compression,
encryption). Pure: the KMS codec lives in `_aws/kms.py`, the public names in `ostinato.codecs`.

A codec turns bytes into bytes and says, in string metadata, what it needs to undo that (a key
id, an IV): the metadata travels in the payload's envelope (`_core/envelope.py`), so a reader
decodes any payload whose codecs it knows by name, whatever settings wrote it (keys rotate).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from .errors import PayloadIntegrityError


@runtime_checkable
class Codec(Protocol):
    """What `App(codec=...)` and `Client(codec=...)` take (or a list of them, applied in order).

    `name` is recorded with every payload it encoded and picks the codec that decodes it;
    `encode` returns the new bytes and the metadata `decode` will be given back.
    """

    name: str

    def encode(self, data: bytes) -> tuple[bytes, dict[str, str]]: ...
    def decode(self, data: bytes, meta: dict[str, str]) -> bytes: ...


class Zlib:
    """zlib compression (`level` 1-9). Decoding is built in: a reader without it configured
    still reads what it compressed."""

    name = "zlib"
    compresses = True

    def __init__(self, level: int = 6) -> None:
        self.level = level

    def encode(self, data: bytes) -> tuple[bytes, dict[str, str]]:
        return zlib.compress(data, self.level), {}

    def decode(self, data: bytes, meta: dict[str, str]) -> bytes:
        try:
            return zlib.decompress(data)
        except zlib.error as exc:
            raise PayloadIntegrityError(f"zlib cannot decompress the payload: {exc}") from None

    def __repr__(self) -> str:
        return f"Zlib(level={self.level})"


CodecSpec = Codec | Sequence[Codec] | None


def chain(spec: CodecSpec) -> tuple[Codec, ...]:
    """The codecs of `spec` (one codec, a sequence, or None), in encoding order, checked."""
    if spec is None:
        return ()
    codecs: Iterable[object] = spec if isinstance(spec, (list, tuple)) else (spec,)
    out = []
    for codec in codecs:
        if not (isinstance(getattr(codec, "name", None), str) and callable(
                getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None))):
            raise TypeError(f"{codec!r} is not a codec: it needs a name and encode/decode "
                            "(ostinato.codecs.Codec)")
        out.append(codec)
    names = [c.name for c in out]  # type: ignore[attr-defined]
    if len(set(names)) != len(names):
        raise ValueError(f"codec names must be unique in a chain: {names}")
    return tuple(out)  # type: ignore[arg-type]


#: Codecs every reader can undo without configuration.
BUILTIN: dict[str, Codec] = {"zlib": Zlib()}
