"""Large payloads through S3 and codecs, end to end through the handlers (DESIGN.md §2
"Payloads"): the test environment runs the `functions/` handlers on its backend's DynamoDB,
SQS, S3 and KMS (the memory backend's, or moto's with OSTINATO_TEST_BACKEND=moto), and every
check below reads what those services actually hold (`tests/stored.py`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from typing import Any

import pytest

import ostinato
from ostinato import activity, workflow
from ostinato._core.items import ITEM_LIMIT
from ostinato._core.serde import MAX_PAYLOAD_BYTES
from ostinato.codecs import KmsEncryption, PayloadIntegrityError, Zlib
from tests.conftest import assert_history_sound
from tests.stored import (
    Sent,
    backend_in_use,
    bare_client,
    delete_object,
    head_item,
    item_bytes,
    items,
    kms_client,
    kms_for,
    objects,
    put_object,
    stored_bytes,
)

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


def text(n: int, seed: int) -> str:
    """`n` characters that do not compress (random base64), so sizes are what they say."""
    return base64.b64encode(random.Random(seed).randbytes(n)).decode()[:n]


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- 50 MiB activity result, 5 MiB signal --------------------------------------------------------
@activity
def produce(n: int, seed: int) -> str:
    return text(n, seed)


@workflow
async def big_flow(ctx: ostinato.WorkflowContext, n: int) -> dict:
    got: list[str] = []
    ctx.on_signal("more", got.append)
    produced = await ctx.execute_activity(produce, n, 1)
    await ctx.wait_condition(lambda: bool(got))
    return {"result": sha(produced), "result_len": len(produced),
            "signal": sha(got[0]), "signal_len": len(got[0])}


def test_a_50_mib_activity_result_and_a_5_mib_signal(make_env):
    env = make_env(ostinato.App(workflows=[big_flow], activities=[produce]))
    sent = Sent(env)
    n = MAX_PAYLOAD_BYTES - 2  # the JSON string, quotes included, is exactly 50 MiB
    signal = text(5 * MIB, 2)
    handle = env.client.start_workflow(big_flow, n, id="big")
    env.sleep(1)
    handle.signal("more", signal)
    assert handle.result() == {"result": sha(text(n, 1)), "result_len": n,
                               "signal": sha(signal), "signal_len": 5 * MIB}
    assert env.handler_errors == []
    # the history holds the values themselves, read back from S3
    history = handle.history()
    assert_history_sound(history)
    (completed,) = [e for e in history if e.event_type == "ActivityTaskCompleted"]
    assert sha(completed.attributes["result"]) == sha(text(n, 1))
    (signalled,) = [e for e in history if e.event_type == "WorkflowExecutionSignaled"]
    assert signalled.attributes["args"] == [signal]
    # ... and no message or item came near its limit: the payloads went to the bucket
    assert sent.largest < 4 * 1024, sent.largest
    assert max(item_bytes(i) for i in items(env)) < ITEM_LIMIT // 2
    stored = objects(env)
    assert max(len(data) for data in stored.values()) > 50 * MIB
    assert {key.split("/")[0] for key in stored} == {"messages", "payloads"}


# -- every kind of payload, offloaded --------------------------------------------------------------
@activity
def echo(value: str) -> str:
    return value[::-1]


@workflow
async def kid(ctx: ostinato.WorkflowContext, value: str) -> str:
    return value.upper()


@workflow
async def everything(ctx: ostinato.WorkflowContext, value: str) -> dict:
    signals: list[str] = []
    ctx.on_signal("add", signals.append)
    ctx.on_update("put", lambda v: v + "!")
    ctx.on_query("sizes", lambda: [len(s) for s in signals])
    ctx.set_status("s" * 20_000)
    echoed = await ctx.execute_activity(echo, value)
    child = await ctx.execute_child_workflow(kid, value, id=f"{ctx.info.workflow_id}-kid")
    await ctx.wait_condition(lambda: len(signals) == 2)
    return {"echoed": echoed, "child": child, "signals": signals}


def test_start_args_activity_args_and_results_signals_updates_child_args_and_results(make_env):
    env = make_env(ostinato.App(workflows=[everything, kid], activities=[echo]))
    sent = Sent(env)
    value = text(MIB, 3)
    handle = env.client.start_workflow(everything, value, id="all")
    handle.signal("add", text(300_000, 4))
    assert handle.update("put", value) == value + "!"
    handle.signal("add", text(200_000, 5))
    env.drain()
    assert handle.query("sizes") == [300_000, 200_000]
    result = handle.result()
    assert result == {"echoed": value[::-1], "child": value.upper(),
                      "signals": [text(300_000, 4), text(200_000, 5)]}
    described = handle.describe()
    assert described.result == result and described.status == "COMPLETED"
    assert env.client.get_workflow_handle("all-kid").result() == value.upper()
    (listed,) = [w for w in env.client.list_workflows() if w.workflow_id == "all"]
    assert listed.result == result
    assert env.handler_errors == []
    assert sent.largest < 4 * 1024, sent.largest
    assert max(item_bytes(i) for i in items(env)) < ITEM_LIMIT // 2


def test_over_50_mib_is_refused_before_anything_is_written(make_env):
    env = make_env(ostinato.App(workflows=[everything, kid], activities=[echo]))
    with pytest.raises(ostinato.PayloadTooLargeError, match="workflow arguments"):
        env.client.start_workflow(everything, "x" * MAX_PAYLOAD_BYTES, id="too-big")
    with pytest.raises(ostinato.WorkflowNotFoundError):
        env.client.get_workflow_handle("too-big").describe()
    assert objects(env) == {}
    handle = env.client.start_workflow(everything, "small", id="small")
    with pytest.raises(ostinato.PayloadTooLargeError, match="signal arguments"):
        handle.signal("add", "x" * MAX_PAYLOAD_BYTES)
    assert objects(env) == {}


def test_small_payloads_without_a_codec_are_stored_as_before(make_env):
    env = make_env(ostinato.App(workflows=[kid]))
    env.client.start_workflow(kid, "tea", id="plain").result()
    head = head_item(env, "plain")
    assert head["args"]["S"] == '["tea"]' and head["result"]["S"] == '"TEA"'
    assert objects(env) == {}


# -- codecs ----------------------------------------------------------------------------------------
SECRET = "card 4111-1111-1111-1111 of ann"
ALIAS = "alias/ostinato-test"


@activity
def charge(card: str) -> str:
    return f"charged {card}"


@workflow
async def pay(ctx: ostinato.WorkflowContext, card: str, notes: str) -> dict:
    notes_in: list[str] = []
    ctx.on_signal("note", notes_in.append)
    ctx.set_status({"card": card})
    receipt = await ctx.execute_activity(charge, card)
    await ctx.wait_condition(lambda: bool(notes_in))
    return {"receipt": receipt, "note": notes_in[0], "notes": len(notes)}


def kms_key(kms: Any) -> str:
    key = kms.create_key(Description="ostinato payloads")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=ALIAS, TargetKeyId=key)
    return key


def api(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    from tests.test_api import call

    return call(method, path, body)


def test_an_encrypted_payload_leaves_no_plaintext_in_dynamodb_sqs_or_s3(make_env):
    kms = kms_for(backend_in_use())  # the memory KMS, or moto's through boto3
    codec = [Zlib(), KmsEncryption(ALIAS, client=kms)]
    env = make_env(ostinato.App(workflows=[pay], activities=[charge], codec=codec))
    key = kms_key(kms_client(kms))
    sent = Sent(env)
    notes = f"{text(400_000, 9)} {SECRET}"  # does not compress: offloaded, encrypted
    handle = env.client.start_workflow(pay, SECRET, notes, id="pay-1")
    env.sleep(1)
    handle.signal("note", f"from {SECRET}")
    expected = {"receipt": f"charged {SECRET}", "note": f"from {SECRET}", "notes": len(notes)}
    assert handle.result() == expected
    assert env.handler_errors == []

    needle = b"4111-1111"
    stored = [stored_bytes(i) for i in items(env)]
    assert stored and not any(needle in blob for blob in stored)
    assert sent.bodies and not any(needle in body.encode() for body in sent.bodies)
    bucket = objects(env)
    assert bucket and not any(needle in data for data in bucket.values())
    # the metadata says how to decrypt: key id (the key's ARN, so keys can rotate) and algorithm
    head = head_item(env, "pay-1")
    assert head["args"]["S"].startswith("%ost1")
    header = json.loads(head["args"]["S"][len("%ost1"):].split("\n", 1)[0])
    assert [name for name, _ in header["c"]] == ["zlib", "kms"]
    assert header["c"][1][1]["key_id"] == key and header["c"][1][1]["alg"] == "AES-256-GCM"

    # the API (and the CLI, which reads through it) decode with the app's codec
    status, described = api("GET", "/workflows/pay-1")
    assert status == 200 and described["result"] == expected
    assert described["custom_status"] == {"card": SECRET}
    status, page = api("GET", "/workflows/pay-1/history")
    assert status == 200
    started = page["events"][0]
    assert started["event_type"] == "WorkflowExecutionStarted"
    assert started["args"] == [SECRET, notes]

    # a reader without the codec gets a clear error, never ciphertext as a value
    bare = bare_client(env)
    with pytest.raises(PayloadIntegrityError, match="codec 'kms'"):
        bare.get_workflow_handle("pay-1").describe()


def test_zlib_alone_compresses_what_is_stored(make_env):
    env = make_env(ostinato.App(workflows=[kid], codec=Zlib()))
    value = "abc" * 100_000
    assert env.client.start_workflow(kid, value, id="z").result() == value.upper()
    head = head_item(env, "z")
    assert head["args"]["S"].startswith("%ost1") and len(head["args"]["S"]) < 5_000
    assert objects(env) == {}  # compressed below the threshold: nothing offloaded


# -- integrity -------------------------------------------------------------------------------------
@workflow
async def holds(ctx: ostinato.WorkflowContext) -> str:
    ctx.on_signal("go", lambda: None)
    produced = await ctx.execute_activity(produce, 300_000, 7)
    await ctx.sleep(60)
    return sha(produced)


def test_a_tampered_or_missing_s3_object_is_an_error_never_a_wrong_value(make_env):
    env = make_env(ostinato.App(workflows=[holds], activities=[produce]))
    handle = env.client.start_workflow(holds, id="held")
    env.sleep(5)
    history_objects = {k: v for k, v in objects(env).items() if k.startswith("payloads/")}
    assert history_objects  # the batch holding the activity's 300 KB result
    for key, data in history_objects.items():
        put_object(env, key, data[:-1] + bytes([data[-1] ^ 1]))

    with pytest.raises(PayloadIntegrityError, match="does not match its reference") as caught:
        handle.history()
    assert caught.value.ref in history_objects

    with pytest.raises(PayloadIntegrityError):  # a signal checks the run is open: refused
        handle.signal("go")

    # the decider cannot read the history when the timer fires: the task fails, the run
    # stays RUNNING, and SQS delivers the task again
    env.engine.decider.history.forget(handle.describe().run_id)  # a cold container's decider
    env.sleep(120)
    assert handle.describe().status == "RUNNING"
    assert any(isinstance(e, PayloadIntegrityError) for e in _flat(env.handler_errors))

    # restored, the redelivered task goes on where it stopped
    for key, data in history_objects.items():
        put_object(env, key, data)
    assert handle.result() == sha(text(300_000, 7))

    for key in history_objects:
        delete_object(env, key)
    with pytest.raises(PayloadIntegrityError, match="missing"):
        handle.history()


def _flat(errors: list[BaseException]) -> list[BaseException]:
    return [exc for error in errors
            for (_, exc, _) in getattr(error, "child_exceptions", [(None, error, None)])]


def test_a_result_too_large_for_a_lambda_response_is_a_typed_error_over_http(make_env):
    env = make_env(ostinato.App(workflows=[kid]))
    value = text(6 * MIB, 12)
    handle = env.client.start_workflow(kid, value, id="huge-result")
    assert handle.result() == value.upper()  # the client reads it
    status, body = api("GET", "/workflows/huge-result")  # a Lambda response holds 6 MB
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert "ostinato.Client" in body["error"]["message"]


def test_the_memory_kms_answers_the_codec_as_kms_does() -> None:
    from ostinato._core.envelope import Envelope, parse
    from ostinato._engine.payloads import Payloads
    from ostinato._local.memory.kms import MemoryKms

    kms = MemoryKms().client()
    old, new = (kms.create_key()["KeyMetadata"]["Arn"] for _ in range(2))
    kms.create_alias(AliasName="alias/old", TargetKeyId=old)
    written = Payloads(KmsEncryption("alias/old", client=kms)).seal('"secret"', "result")
    envelope = parse(written)
    ((_, meta),) = envelope.codecs
    assert meta["key_id"] == old and b"secret" not in envelope.data
    # a reader configured with another key (rotated) still reads it: the data key names its own
    assert Payloads(KmsEncryption(new, client=kms)).open(written) == '"secret"'
    # a data key altered on the way is refused by KMS, never decrypted to something else
    key = base64.b64decode(meta["dk"])
    forged = Envelope([("kms", {**meta, "dk": base64.b64encode(
        key[:-1] + bytes([key[-1] ^ 1])).decode()})], None, envelope.data).to_text()
    with pytest.raises(PayloadIntegrityError, match="KMS refused the payload's data key"):
        Payloads(KmsEncryption(new, client=kms)).open(forged)
