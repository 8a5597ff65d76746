"""The payload pipeline on its own: envelope, codecs, offload rules, integrity, key rotation.
(End to end through the handlers: tests/test_payloads.py.)"""

from __future__ import annotations

import json
import os

import boto3
import pytest
from moto import mock_aws

from ostinato import PayloadTooLargeError
from ostinato._core.envelope import MAGIC, parse
from ostinato._engine.payloads import IN_FLIGHT, INLINE_LIMIT, Payloads
from ostinato.codecs import Codec, KmsEncryption, PayloadIntegrityError, Zlib


class DictStore:
    """A `PayloadStore` in a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> str:
        self.objects[key] = data
        return key

    def get(self, ref: str) -> bytes:
        if ref not in self.objects:
            raise PayloadIntegrityError(f"payload object {ref!r} is missing", ref=ref)
        return self.objects[ref]


class Rot13:
    """A user codec (the protocol is all it takes)."""

    name = "rot13"

    def encode(self, data: bytes) -> tuple[bytes, dict[str, str]]:
        return bytes((b + 13) % 256 for b in data), {"shift": "13"}

    def decode(self, data: bytes, meta: dict[str, str]) -> bytes:
        return bytes((b - int(meta["shift"])) % 256 for b in data)


def test_plain_small_json_passes_unchanged() -> None:
    pipeline = Payloads(store=DictStore())
    assert pipeline.seal('["tea"]', "args") == '["tea"]'
    assert pipeline.open('["tea"]') == '["tea"]'
    assert pipeline.seal_bytes(b"x\x9cabc", "batch") == b"x\x9cabc"


def test_over_the_threshold_goes_to_the_store_with_its_sha256() -> None:
    store = DictStore()
    pipeline = Payloads(store=store, threshold=100)
    text = json.dumps(os.urandom(300).hex())
    sealed = pipeline.seal(text, "args", prefix=IN_FLIGHT)
    assert sealed.startswith(MAGIC) and len(sealed) < 300
    envelope = parse(sealed)
    assert envelope.ref is not None and envelope.ref.key.startswith(IN_FLIGHT)
    assert store.objects[envelope.ref.key] == text.encode()
    assert pipeline.open(sealed) == text
    # content-addressed: the same payload twice is one object
    assert pipeline.seal(text, "args", prefix=IN_FLIGHT) == sealed and len(store.objects) == 1


def test_a_user_codec_chain_round_trips_and_is_recorded_in_order() -> None:
    pipeline = Payloads([Zlib(), Rot13()])
    sealed = pipeline.seal('{"a": 1}', "result")
    assert [name for name, _ in parse(sealed).codecs] == ["zlib", "rot13"]
    assert parse(sealed).codecs[1][1] == {"shift": "13"}
    assert pipeline.open(sealed) == '{"a": 1}'
    assert isinstance(Rot13(), Codec)


def test_a_reader_without_the_codec_is_told_which_one_it_lacks() -> None:
    sealed = Payloads(Rot13()).seal('"x"', "result")
    with pytest.raises(PayloadIntegrityError, match="codec 'rot13'"):
        Payloads().open(sealed)
    assert Payloads(Rot13()).open(sealed) == '"x"'
    zipped = Payloads(Zlib()).seal('"x"', "result")
    assert Payloads().open(zipped) == '"x"'  # zlib is built in


def test_without_a_store_a_payload_over_the_inline_limit_is_refused() -> None:
    with pytest.raises(PayloadTooLargeError, match="no payload bucket"):
        Payloads().seal(json.dumps("x" * INLINE_LIMIT), "workflow arguments")
    big = json.dumps("y" * 150_000)
    assert Payloads().seal(big, "workflow arguments") == big  # as before the bucket existed


def test_damaged_or_tampered_envelopes_are_errors() -> None:
    store = DictStore()
    pipeline = Payloads(store=store, threshold=10)
    sealed = pipeline.seal(json.dumps("z" * 100), "args")
    (key,) = store.objects
    store.objects[key] = store.objects[key][:-2] + b'!"'
    with pytest.raises(PayloadIntegrityError, match="does not match its reference") as caught:
        pipeline.open(sealed)
    assert caught.value.ref == key
    del store.objects[key]
    with pytest.raises(PayloadIntegrityError, match="missing"):
        pipeline.open(sealed)
    with pytest.raises(PayloadIntegrityError, match="damaged"):
        pipeline.open(MAGIC + "{not json\n")
    with pytest.raises(PayloadIntegrityError, match="no bucket is configured"):
        Payloads().open(sealed)


def test_chains_are_checked_when_configured() -> None:
    with pytest.raises(TypeError, match="not a codec"):
        Payloads(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        Payloads([Zlib(), Zlib()])


@mock_aws
def test_kms_envelope_encryption_rotates_and_detects_tampering() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    kms = boto3.client("kms", region_name="us-east-1")
    old = kms.create_key()["KeyMetadata"]["Arn"]
    new = kms.create_key()["KeyMetadata"]["Arn"]
    written = Payloads(KmsEncryption(old, region="us-east-1")).seal('"secret"', "result")
    assert "secret" not in written
    meta = parse(written).codecs[0][1]
    assert meta["key_id"] == old and meta["alg"] == "AES-256-GCM" and meta["iv"] and meta["dk"]
    # rotated: the reader now encrypts under the new key, and still reads the old payloads
    reader = Payloads(KmsEncryption(new, region="us-east-1"))
    assert reader.open(written) == '"secret"'
    assert parse(reader.seal('"s"', "result")).codecs[0][1]["key_id"] == new
    # one flipped bit of ciphertext fails AES-GCM's authentication
    envelope = parse(written)
    flipped = envelope.data[:-1] + bytes([envelope.data[-1] ^ 1])
    forged = type(envelope)(envelope.codecs, None, flipped).to_text()
    with pytest.raises(PayloadIntegrityError, match="fails authentication"):
        reader.open(forged)


@mock_aws
def test_kms_reuses_a_data_key_for_a_while_instead_of_a_call_per_payload() -> None:
    kms = boto3.client("kms", region_name="us-east-1")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    codec = KmsEncryption(key, client=kms)
    calls: list[str] = []
    kms.meta.events.register("before-call.kms.*", lambda model, **_: calls.append(model.name))
    pipeline = Payloads(codec)
    sealed = [pipeline.seal(json.dumps(n), "result") for n in range(20)]
    assert calls == ["GenerateDataKey"]
    assert [pipeline.open(s) for s in sealed] == [json.dumps(n) for n in range(20)]
    assert calls == ["GenerateDataKey"]  # its own payloads: no Decrypt either
