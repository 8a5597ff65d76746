"""Every EventBridge Scheduler schedule names the stack's DLQ and a retry policy, and the
schedule group's name fits Scheduler's 64 characters."""

from __future__ import annotations

from datetime import timedelta

from ostinato._aws.scheduler import FIRING_RETRY, TIMER_RETRY
from ostinato._core import keys
from tests.apps import core, scheduled


def schedules_of(env) -> dict[str, dict]:
    group = env.settings.schedule_group
    names = [s["Name"] for s in env.scheduler.list_schedules(GroupName=group)["Schedules"]]
    return {n: env.scheduler.get_schedule(Name=n, GroupName=group) for n in names}


def test_one_time_timers_dead_letter_to_the_stack_dlq(make_env):
    core.reset()
    env = make_env(core.app)
    handle = env.client.start_workflow("long_timer", id="lt")
    env.drain()  # the 2-day sleep is past SQS's 15-minute delays: a Scheduler at() schedule

    (schedule,) = schedules_of(env).values()

    assert schedule["ScheduleExpression"].startswith("at(")
    target = schedule["Target"]
    assert target["DeadLetterConfig"] == {"Arn": env.stack.arns["SchedulerDLQ"]}
    assert target["RetryPolicy"] == TIMER_RETRY
    assert env.settings.scheduler_dlq_arn == env.stack.arns["SchedulerDLQ"]
    env.sleep(timedelta(days=2, minutes=1))
    assert handle.result() == "after two days"


def test_recurring_schedules_dead_letter_to_the_stack_dlq(make_env):
    env = make_env(scheduled.app)
    env.client.create_schedule("hourly", scheduled.tick, "x", rate="1 hour")

    (schedule,) = schedules_of(env).values()

    assert schedule["Name"] == keys.recurring_schedule("hourly")
    assert schedule["Target"]["DeadLetterConfig"] == {"Arn": env.stack.arns["SchedulerDLQ"]}
    assert schedule["Target"]["RetryPolicy"] == FIRING_RETRY


def test_the_schedule_group_name_derives_from_the_stack_id(make_env):
    env = make_env(core.app)
    group = env.settings.schedule_group
    stack_uuid = env.stack.pseudo["AWS::StackId"].rsplit("/", 1)[-1]
    assert group == f"ostinato-{stack_uuid}" and len(group) <= 64
