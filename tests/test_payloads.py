"""Large payloads through S3 and codecs, end to end through the handlers (DESIGN.md §2
"Payloads"): the test environment runs the `functions/` handlers on moto's DynamoDB, SQS, S3
and KMS, and every check below reads what those services actually hold.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from typing import Any

import boto3
import pytest

import ostinato
from ostinato import activity, workflow
from ostinato._core.serde import MAX_PAYLOAD_BYTES
from ostinato.codecs import KmsEncryption, PayloadIntegrityError, Zlib
from tests.conftest import assert_history_sound

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
#: DynamoDB's item limit.
ITEM_LIMIT = 400 * 1024


def text(n: int, seed: int) -> str:
    """`n` characters that do not compress (random base64), so sizes are what they say."""
    return base64.b64encode(random.Random(seed).randbytes(n)).decode()[:n]


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- the services' view --------------------------------------------------------------------------
class Sent:
    """Every SQS body and Scheduler input the environment's clients send, as sent."""

    def __init__(self, env: Any) -> None:
        self.bodies: list[str] = []
        env.sqs.meta.events.register("provide-client-params.sqs.SendMessage", self._one)
        env.sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", self._batch)
        env.scheduler.meta.events.register("provide-client-params.scheduler.CreateSchedule",
                                           self._schedule)

    def _one(self, params: dict[str, Any], **_: Any) -> None:
        self.bodies.append(params["MessageBody"])

    def _batch(self, params: dict[str, Any], **_: Any) -> None:
        self.bodies += [entry["MessageBody"] for entry in params["Entries"]]

    def _schedule(self, params: dict[str, Any], **_: Any) -> None:
        self.bodies.append(params["Target"]["Input"])

    @property
    def largest(self) -> int:
        return max(len(b.encode()) for b in self.bodies)


def items(env: Any) -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    return ddb.scan(TableName=env.settings.table_name)["Items"]


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: attribute names plus values."""
    size = 0
    for name, value in item.items():
        ((kind, raw),) = value.items()
        size += len(name.encode()) + len(raw if kind == "B" else json.dumps(raw).encode())
    return size


def stored_bytes(item: dict[str, Any]) -> bytes:
    return b"".join(raw if kind == "B" else json.dumps(raw, ensure_ascii=False).encode()
                    for value in item.values() for kind, raw in value.items())


def s3_objects(env: Any) -> dict[str, bytes]:
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = env.settings.payload_bucket
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


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
    env = make_env(ostinato.App(workflows=[big_flow], activities=[produce]), backend="moto")
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
    objects = s3_objects(env)
    assert max(len(data) for data in objects.values()) > 50 * MIB
    assert {key.split("/")[0] for key in objects} == {"messages", "payloads"}


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
    env = make_env(ostinato.App(workflows=[everything, kid], activities=[echo]), backend="moto")
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
    env = make_env(ostinato.App(workflows=[everything, kid], activities=[echo]), backend="moto")
    with pytest.raises(ostinato.PayloadTooLargeError, match="workflow arguments"):
        env.client.start_workflow(everything, "x" * MAX_PAYLOAD_BYTES, id="too-big")
    with pytest.raises(ostinato.WorkflowNotFoundError):
        env.client.get_workflow_handle("too-big").describe()
    assert s3_objects(env) == {}
    handle = env.client.start_workflow(everything, "small", id="small")
    with pytest.raises(ostinato.PayloadTooLargeError, match="signal arguments"):
        handle.signal("add", "x" * MAX_PAYLOAD_BYTES)
    assert s3_objects(env) == {}


def test_small_payloads_without_a_codec_are_stored_as_before(make_env):
    env = make_env(ostinato.App(workflows=[kid]), backend="moto")
    env.client.start_workflow(kid, "tea", id="plain").result()
    head = next(i for i in items(env) if i["pk"]["S"] == "W#plain" and i["sk"]["S"] == "HEAD")
    assert head["args"]["S"] == '["tea"]' and head["result"]["S"] == '"TEA"'
    assert s3_objects(env) == {}


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


def kms_key() -> str:
    kms = boto3.client("kms", region_name="us-east-1")
    key = kms.create_key(Description="ostinato payloads")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=ALIAS, TargetKeyId=key)
    return key


def api(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    from tests.test_api import call

    return call(method, path, body)


def test_an_encrypted_payload_leaves_no_plaintext_in_dynamodb_sqs_or_s3(make_env):
    codec = [Zlib(), KmsEncryption(ALIAS)]
    env = make_env(ostinato.App(workflows=[pay], activities=[charge], codec=codec), backend="moto")
    key = kms_key()
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
    objects = s3_objects(env)
    assert objects and not any(needle in data for data in objects.values())
    # the metadata says how to decrypt: key id (the key's ARN, so keys can rotate) and algorithm
    head = next(i for i in items(env) if i["pk"]["S"] == "W#pay-1" and i["sk"]["S"] == "HEAD")
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
    bare = ostinato.Client(env.settings)
    with pytest.raises(PayloadIntegrityError, match="codec 'kms'"):
        bare.get_workflow_handle("pay-1").describe()


def test_zlib_alone_compresses_what_is_stored(make_env):
    env = make_env(ostinato.App(workflows=[kid], codec=Zlib()), backend="moto")
    value = "abc" * 100_000
    assert env.client.start_workflow(kid, value, id="z").result() == value.upper()
    head = next(i for i in items(env) if i["pk"]["S"] == "W#z" and i["sk"]["S"] == "HEAD")
    assert head["args"]["S"].startswith("%ost1") and len(head["args"]["S"]) < 5_000
    assert s3_objects(env) == {}  # compressed below the threshold: nothing offloaded


# -- integrity -------------------------------------------------------------------------------------
@workflow
async def holds(ctx: ostinato.WorkflowContext) -> str:
    ctx.on_signal("go", lambda: None)
    produced = await ctx.execute_activity(produce, 300_000, 7)
    await ctx.sleep(60)
    return sha(produced)


def test_a_tampered_or_missing_s3_object_is_an_error_never_a_wrong_value(make_env):
    env = make_env(ostinato.App(workflows=[holds], activities=[produce]), backend="moto")
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = env.settings.payload_bucket
    handle = env.client.start_workflow(holds, id="held")
    env.sleep(5)
    history_objects = {k: v for k, v in s3_objects(env).items() if k.startswith("payloads/")}
    assert history_objects  # the batch holding the activity's 300 KB result
    for key, data in history_objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data[:-1] + bytes([data[-1] ^ 1]))

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
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    assert handle.result() == sha(text(300_000, 7))

    for key in history_objects:
        s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(PayloadIntegrityError, match="missing"):
        handle.history()


def _flat(errors: list[BaseException]) -> list[BaseException]:
    return [exc for error in errors
            for (_, exc, _) in getattr(error, "child_exceptions", [(None, error, None)])]


def test_a_result_too_large_for_a_lambda_response_is_a_typed_error_over_http(make_env):
    env = make_env(ostinato.App(workflows=[kid]), backend="moto")
    value = text(6 * MIB, 12)
    handle = env.client.start_workflow(kid, value, id="huge-result")
    assert handle.result() == value.upper()  # the client reads it
    status, body = api("GET", "/workflows/huge-result")  # a Lambda response holds 6 MB
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert "ostinato.Client" in body["error"]["message"]
