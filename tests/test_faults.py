"""Failure is the normal case: AWS calls failing before or after they take effect, handlers
dying between any two calls, SQS delivering twice, deciders racing. Whatever happens: the right
result, no duplicated or missing history event, no stuck workflow."""

from __future__ import annotations

import json
import threading

import pytest

import ostinato
from ostinato._core import keys, wire
from ostinato._local.faults import FaultInjector, exempt
from ostinato.testing import WorkflowEnvironment
from tests.apps import mixed
from tests.conftest import assert_history_sound


@pytest.fixture(autouse=True)
def _on_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests fault botocore calls: the moto backend, whatever the default."""
    monkeypatch.setenv("OSTINATO_TEST_BACKEND", "moto")


def run_mixed(env, wids, injector=None):
    """Start, signal and finish `mixed` workflows (optionally under faults); return handles."""
    handles = [env.client.start_workflow("mixed", wid, id=wid) for wid in wids]
    if injector is not None:
        injector.__enter__()
    try:
        env.sleep(600)  # past the 5-minute timers: every workflow now waits for its signal
        approve_all(env, handles)
        for handle in handles:
            assert handle.result(timeout=120) == mixed.expected(handle.id)
    finally:
        if injector is not None:
            injector.__exit__(None, None, None)
    return handles


def approve_all(env, handles):
    """Signal every workflow and complete its callback (outside any fault plan's reach)."""
    for handle in handles:
        for _ in range(60):  # faults may have delayed its first workflow task
            try:
                with exempt():
                    token = handle.query("token")
                break
            except ostinato.QueryRejectedError:
                env.sleep(60)  # the engine runs on, under the fault plan
        with exempt():  # an update (validated by the decider), a signal, a callback
            uid = f"bump-{handle.id}"  # one id per workflow: a retried send is one update
            env.client.transport.send_workflow_task(wire.Update(
                handle.id, handle.current_run_id(), keys.update(uid), update_id=uid,
                name="bump", args=[7]))
            handle.signal("poke", "hi")
            env.client.complete_callback(token, f"ok {handle.id}")


def check_sound(env, handles):
    for handle in handles:
        history = handle.history()
        assert_history_sound(history)
        assert history[-1].event_type == "WorkflowExecutionCompleted"
        # A crash after the closing write is repaired when SQS redelivers the message
        # (visibility timeout 360 s): describe() is eventually consistent, result() is not.
        env.sleep(400)
        assert handle.describe().status == "COMPLETED"
        child = env.client.get_workflow_handle(f"{handle.id}-helper")
        assert_history_sound(child.history())
        assert child.describe().status == "COMPLETED"
        for suffix in ("a", "b", "c", "bump", "child"):
            assert mixed.executions[f"{handle.id}-{suffix}"] >= 1
        assert env.runtime.store.update_outcome(
            handle.current_run_id(), f"bump-{handle.id}") == {"result": 1}


def count_calls(make_env) -> int:
    env = make_env(mixed.app)
    with FaultInjector(lambda call: None) as probe:
        run_mixed(env, ["probe"])
    return len(probe.calls)


@pytest.mark.parametrize("when", ["before", "after"])
def test_crash_at_every_aws_call_of_a_workflow(make_env, when):
    """A handler dies at call i (before or after it took effect), for every i of a run."""
    total = count_calls(make_env)
    assert total > 15  # the run makes many AWS calls; each one is a place to die
    for index in range(total):
        mixed.executions.clear()
        with WorkflowEnvironment(mixed.app) as env:
            injector = FaultInjector.at(index, when)
            handles = run_mixed(env, [f"w{index}"], injector)
            assert len(injector.injected) == 1, f"call {index} was not reached"
            check_sound(env, handles)


@pytest.mark.parametrize("seed", range(6))
def test_random_faults_across_a_batch_of_workflows(make_env, seed):
    """Seeded faults on 8% of every AWS call (handlers and the event-source poller alike)."""
    mixed.executions.clear()
    env = make_env(mixed.app)
    injector = FaultInjector.seeded(seed, rate=0.08, handlers_only=False)
    wids = [f"s{seed}-{i}" for i in range(8)]
    handles = [env.client.start_workflow("mixed", wid, id=wid) for wid in wids]
    with injector:
        env.sleep(600)
    approve_all(env, handles)
    with injector:
        for handle in handles:
            assert handle.result(timeout=120) == mixed.expected(handle.id)
    assert len(injector.injected) > 10
    check_sound(env, handles)


def test_client_start_failing_after_the_wakeup_leaves_no_half_started_workflow(make_env):
    env = make_env(mixed.app)
    # call 0 is the SQS wake-up, call 1 the conditional put of the run: fail the put
    with FaultInjector(lambda c: "before" if c.operation == "PutItem" else None,
                       handlers_only=False), pytest.raises(Exception, match="injected"):
        env.client.start_workflow("mixed", "x", id="half")
    env.sleep(120)  # the orphan wake-up is retried, then dropped after its grace period
    assert env.runtime.store.get_head("half") is None
    assert env.next_due() is None  # nothing left circulating
    # the id is free: a retried start works
    assert run_mixed(env, ["half"])[0].describe().status == "COMPLETED"


def test_client_start_failing_after_the_write_still_runs(make_env):
    env = make_env(mixed.app)
    with FaultInjector(lambda c: "after" if c.operation == "PutItem" else None,
                       handlers_only=False), pytest.raises(Exception, match="injected"):
        env.client.start_workflow("mixed", "y", id="y")
    handle = env.client.get_workflow_handle("y")
    env.sleep(600)
    approve_all(env, [handle])
    assert handle.result() == mixed.expected("y")


def test_sqs_delivers_every_message_twice(make_env):
    """Every workflow-task and activity message sent twice (new dedup ids): nothing doubles."""
    env = make_env(mixed.app)
    transport = env.runtime.transport
    sqs = transport.sqs
    original = sqs.send_message

    def twice(**kwargs):
        original(**kwargs)
        if "MessageDeduplicationId" in kwargs:
            kwargs = {**kwargs, "MessageDeduplicationId": kwargs["MessageDeduplicationId"] + "x"}
        return original(**kwargs)

    sqs.send_message = twice
    mixed.executions.clear()
    handles = run_mixed(env, ["d1", "d2"])
    check_sound(env, handles)
    assert mixed.executions["d1-a"] == 2  # activities ran at least once (here twice) ...
    history = handles[0].history()
    results = [e for e in history if e.event_type == "ActivityTaskCompleted"]
    assert len(results) == 4  # ... and their results were recorded exactly once
    assert [e.event_type for e in history].count("WorkflowExecutionSignaled") == 1
    assert [e.event_type for e in history].count("WorkflowExecutionUpdateAccepted") == 1


def take_workflow_tasks(env):
    """Receive the pending workflow-task messages by hand (as a decider's Lambda would)."""
    messages = env.sqs.receive_message(QueueUrl=env.settings.workflow_queue_url,
                                       MaxNumberOfMessages=10)["Messages"]
    return messages, [wire.Delivery(wire.decode_message(json.loads(m["Body"])))
                      for m in messages]


def finish(env, handle, messages):
    """Acknowledge the hand-received messages, then run the workflow to its sound end."""
    env.sqs.delete_message(QueueUrl=env.settings.workflow_queue_url,
                           ReceiptHandle=messages[0]["ReceiptHandle"])
    env.sleep(600)
    approve_all(env, [handle])
    assert handle.result() == mixed.expected(handle.id)
    assert_history_sound(handle.history())


def test_two_deciders_race_on_one_workflow(make_env):
    """The same workflow-task messages handed to two deciders at once: one append wins."""
    env = make_env(mixed.app)
    handle = env.client.start_workflow("mixed", "r", id="r")
    messages, bodies = take_workflow_tasks(env)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def decide():
        try:
            barrier.wait()
            env.engine.handle_workflow_messages(bodies)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=decide) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    history = handle.history()
    assert [e.event_type for e in history].count("WorkflowExecutionStarted") == 1
    assert_history_sound(history)
    finish(env, handle, messages)


def test_decider_losing_the_append_race_rereads_and_adds_nothing(make_env, monkeypatch):
    """Interleave deterministically: B appends between A's read and A's write."""
    env = make_env(mixed.app)
    handle = env.client.start_workflow("mixed", "i", id="i")
    messages, bodies = take_workflow_tasks(env)
    store = env.runtime.store
    original = store.append
    raced = []

    def append_after_rival(run_id, batch):
        if not raced:
            raced.append(True)
            original(run_id, batch)  # the rival decider wins with the same decision...
        return original(run_id, batch)  # ...so ours now conflicts and must re-read

    monkeypatch.setattr(store, "append", append_after_rival)
    # FIFO hands a group's messages to one decider at a time, so a rival holding the same
    # messages got them first: ours is at least the second receive (and the rival may die
    # before sending; our re-read must repair its outbox).
    env.engine.handle_workflow_messages([d.replace(receives=2) for d in bodies])
    assert len(store.load_batches(handle.current_run_id())) == 1
    monkeypatch.setattr(store, "append", original)
    finish(env, handle, messages)


def test_worker_dying_repeatedly_follows_the_retry_policy_not_the_dlq(make_env):
    """Six worker deaths in a row (more than the queue's maxReceiveCount of 5): the dead
    attempts count as timed-out attempts and are retried as new messages; nothing strands."""
    env = make_env(mixed.app)
    deaths = []

    def plan(call):
        # the activity worker reports its result with SendMessage to the FIFO queue
        if (call.operation == "SendMessage" and len(deaths) < 6
                and '"k":"activity"' in call.params.get("MessageBody", "")):
            deaths.append(call.index)
            return "before"
        return None

    handles = run_mixed(env, ["dies"], FaultInjector(plan))
    assert len(deaths) == 6
    check_sound(env, handles)
    dlq = env.stack.refs["ActivityDLQDefault"]
    assert "Messages" not in env.sqs.receive_message(QueueUrl=dlq)


def test_a_closing_decision_whose_outbox_keeps_failing_still_shows_closed(make_env):
    """Found by the simulation (seeds 4025 and 8595 of 10,000): a run cancelled while an
    activity was open closes with an outbox that flags the activity; when every try of that
    outbox fails (here the flag's write, always), the messages walk to the DLQ, and describe
    and list must still show the run CANCELLED (the head is projected before the outbox)."""
    from datetime import timedelta

    @ostinato.activity(retry=ostinato.RetryPolicy(initial_interval=timedelta(hours=1)))
    def later() -> str:
        raise RuntimeError("not now")

    @ostinato.workflow
    async def waits(ctx: ostinato.WorkflowContext) -> str:
        return str(await ctx.execute_activity(later))

    env = make_env(ostinato.App(workflows=[waits], activities=[later]))
    handle = env.client.start_workflow(waits, id="outbox-fails")
    env.sleep(60)  # the first attempt failed; its retry is an hour away: the activity is open
    flag_writes = []

    def plan(call):
        key = call.params.get("Key", {}).get("sk", {}).get("S", "")
        if call.operation == "UpdateItem" and key.startswith("H#"):
            flag_writes.append(call.index)
            return "before"
        return None

    with FaultInjector(plan):
        handle.cancel("stop")
        env.sleep(3600)
    assert flag_writes, "the cancel flag's write was never tried"
    assert handle.describe().status == "CANCELLED"
    assert [d.status for d in env.client.list_workflows()] == ["CANCELLED"]
