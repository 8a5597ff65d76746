"""The typed wire protocol and deterministic keys, and the bugs they fixed."""

from __future__ import annotations

import json
import re

import pytest

import ostinato
from ostinato._core import keys, wire
from ostinato._core.errors import ApplicationError
from ostinato._engine import decider
from ostinato._runtime import Client
from tests.apps import core

#: What SQS accepts as a MessageDeduplicationId (AWS SQS API reference, SendMessage).
DEDUP_ID = re.compile(r"[!-~]{1,128}")


def sample(cls: type[wire.Message]) -> wire.Message:
    """An instance of a message kind with every optional field set."""
    values = {"seq": 3, "attempt": 2, "result": {"x": 1}, "failure": None, "timed_out": None,
              "name": "n", "args": [1, "two"], "reason": "why", "child_workflow_id": "c",
              "status": "COMPLETED", "update_id": "u1", "sent_at": 12.5}
    own = {name: values[name] for name in cls.FIELDS if name in values}
    return cls("wf-1", "run-1", "key-1", **own)


@pytest.mark.parametrize("cls", list(wire.MESSAGE_KINDS.values()), ids=lambda c: c.KIND)
def test_every_message_kind_round_trips_through_its_json(cls):
    msg = sample(cls)
    body = json.loads(json.dumps(msg.encode()))
    assert body["k"] == cls.KIND and body["wid"] == "wf-1" and body["mk"] == "key-1"
    assert wire.decode_message(body) == msg


def test_outbox_entries_round_trip():
    task = wire.ActivityTask("w", "r", 1, "act", [1], {"task_queue": "q"}, 1, 5.0)
    entries = [wire.SendMessage(sample(wire.Signal)), wire.SendActivity(task),
               wire.DeliverAt(9.0, "t:r:1", wire.Envelope(sample(wire.TimerFired))),
               wire.DeliverAt(9.0, "ar:r:1:2", wire.Envelope(task.next_attempt())),
               wire.CancelAt("t:r:1", scheduler=True),
               wire.ContinueRun("w", "r", "r2", "wf", [1], 100.0, None),
               wire.StartChild("c", "cr", "wf", [], {"wid": "w", "rid": "r", "seq": 1}),
               wire.reject_update("r", "u", "no")]
    for entry in entries:
        assert wire.decode_outbox(json.loads(json.dumps(entry.encode()))) == entry
    assert wire.SendActivity(task).encode()["queue"] == "q"


@pytest.mark.parametrize("body", [[], "x", {"k": "nope", "wid": "w", "rid": "r", "mk": "m"},
                                  {"k": "signal", "wid": "w"},
                                  {"k": "timer", "wid": "w", "rid": "r", "mk": "m", "bogus": 1},
                                  {"k": "start", "wid": 1, "rid": "r", "mk": "m"}])
def test_what_is_not_a_message_is_refused_with_a_wire_error(body):
    with pytest.raises(wire.WireError):
        wire.decode_message(body)


def test_dedup_ids_are_what_sqs_accepts_whatever_the_key():
    for key in ["s:abc", "signal:réessai", "x" * 200, "u:" + "é" * 10, "a b", "cb:r:1:ü"]:
        assert DEDUP_ID.fullmatch(keys.dedup_id(key)), key
    assert keys.dedup_id("s:abc") == "s:abc"  # plain keys stay readable
    assert keys.dedup_id("signal:réessai") != keys.dedup_id("signal:reessai")


def test_a_non_ascii_request_id_gives_a_deduplication_id_sqs_accepts(make_env):
    """Review finding: `str.isalnum` let "é" through into MessageDeduplicationId."""
    env = make_env(core.app)
    sent: list[str] = []
    original = env.sqs.send_message

    def capture(**kwargs):
        if "MessageDeduplicationId" in kwargs:
            sent.append(kwargs["MessageDeduplicationId"])
        return original(**kwargs)

    env.sqs.send_message = capture
    handle = env.client.start_workflow(core.signals, id="sig-1")
    handle.signal("item", "a", request_id="réessai")
    handle.signal("item", "a", request_id="réessai")  # the retry is recorded once
    for item in "bcd":
        handle.signal("item", item)
    assert handle.result()["seen"] == ["a", "b", "c", "d", "no more"]
    assert sent and all(DEDUP_ID.fullmatch(d) for d in sent), sent


def test_an_engine_bug_while_building_the_outbox_is_not_a_silent_task_retry(make_env,
                                                                            monkeypatch):
    """Review finding: `except Exception` around the outbox turned a KeyError into a
    recorded workflow-task failure retried for up to 900 s. It must escape instead (SQS
    redelivers), and nothing is written."""
    env = make_env(core.app)
    handle = env.client.start_workflow(core.sequential, 1, id="bug-1")
    msgs = env.sqs.receive_message(QueueUrl=env.settings.workflow_queue_url)["Messages"]
    deliveries = [wire.Delivery(wire.decode_message(json.loads(m["Body"]))) for m in msgs]

    def broken(*args, **kwargs):
        raise KeyError("an engine bug")

    monkeypatch.setattr(decider, "decision_outbox", broken)
    with pytest.raises(KeyError):
        env.engine.handle_workflow_messages(deliveries)
    assert env.runtime.store.load_batches(handle.current_run_id()) == []


def test_a_non_deterministic_or_unencodable_decision_still_fails_the_task(make_env,
                                                                          monkeypatch):
    """What the narrowed catch keeps: errors fixed by deploying code fail the task (the run
    stays RUNNING, describe says why)."""
    env = make_env(core.app)
    handle = env.client.start_workflow(core.sequential, 1, id="enc-1")

    def unencodable(*args, **kwargs):
        raise ApplicationError("arguments of activity 'echo' is not JSON-serialisable",
                               type="SerializationError", non_retryable=True)

    monkeypatch.setattr(decider, "decision_outbox", unencodable)
    env.drain()
    described = handle.describe()
    assert described.status == "RUNNING"
    assert "not JSON-serialisable" in (described.task_failure or "")
    assert env.handler_errors == []


def test_a_client_without_an_app_starts_by_name_and_says_what_it_lacks(make_env,
                                                                       monkeypatch):
    """Review finding: `Client.from_env()` without OSTINATO_APP failed with a bare KeyError."""
    env = make_env(core.app, backend="moto")  # a client of its own, from settings: boto3
    monkeypatch.delenv("OSTINATO_APP", raising=False)
    for name, value in env.settings.to_env().items():
        monkeypatch.setenv(name, value)
    bare = Client.from_env()
    handle = bare.start_workflow("sequential", 2, id="bare-1")  # by type name: no App needed
    assert env.client.get_workflow_handle("bare-1").result() == [0, 1]
    with pytest.raises(ostinato.OstinatoError, match="no App"):
        handle.query("anything")
