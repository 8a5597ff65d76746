"""Payload codecs: what `App(codec=...)` and `Client(codec=...)` apply to every payload before
it is stored or sent (DESIGN.md §2 "Payloads").

```python
from ostinato.codecs import KmsEncryption, Zlib

app = ostinato.App(workflows=[...], codec=[Zlib(), KmsEncryption("alias/orders")])
```

A codec is any object with a `name` and `encode(data) -> (data, metadata)` /
`decode(data, metadata) -> data` (`Codec`); a list applies its codecs in order. Readers (the
API, the CLI through it, `Client`) decode with the codecs they are configured with, picked by
the names recorded with each payload. A payload that cannot be read back exactly (a tampered
or missing S3 object, a wrong key) raises `PayloadIntegrityError`, never a wrong value.
"""

from __future__ import annotations

from ._aws.kms import KmsEncryption
from ._core.codecs import Codec, Zlib
from ._core.errors import PayloadIntegrityError

__all__ = ["Codec", "KmsEncryption", "PayloadIntegrityError", "Zlib"]
