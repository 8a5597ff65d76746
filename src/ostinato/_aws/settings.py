"""Where the stack lives: resource names and URLs, read from the environment.

The same variables are set by `template.yaml` on Lambda, by `ostinato dev` and by the test
environment, so handlers contain no endpoint or naming logic. Off the stack, the same values
come from its CloudFormation outputs (`from_outputs`): `template.yaml` publishes one output
per variable, with the same value (tests/test_stack.py holds the two together).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .session import configured_region, env_region

#: template.yaml's output -> the variable of the functions' environment holding its value
OUTPUT_VARIABLES = {
    "WorkflowTableName": "OSTINATO_TABLE",
    "WorkflowTaskQueueUrl": "OSTINATO_WORKFLOW_QUEUE_URL",
    "TimerQueueUrl": "OSTINATO_TIMER_QUEUE_URL",
    "TimerQueueArn": "OSTINATO_TIMER_QUEUE_ARN",
    "ActivityQueueUrls": "OSTINATO_ACTIVITY_QUEUE_URLS",
    "ScheduleGroupName": "OSTINATO_SCHEDULE_GROUP",
    "SchedulerRoleArn": "OSTINATO_SCHEDULER_ROLE_ARN",
    "TriggerQueueArn": "OSTINATO_TRIGGER_QUEUE_ARN",
    "TriggerQueueUrl": "OSTINATO_TRIGGER_QUEUE_URL",
    "SchedulerDLQArn": "OSTINATO_SCHEDULER_DLQ_ARN",
    "PayloadBucketName": "OSTINATO_PAYLOAD_BUCKET",
    "Region": "AWS_REGION",
}


@dataclass(frozen=True)
class Settings:
    table_name: str
    workflow_queue_url: str
    timer_queue_url: str
    activity_queue_urls: dict[str, str] = field(default_factory=dict)
    schedule_group: str = "default"
    scheduler_role_arn: str = ""
    timer_queue_arn: str = ""
    trigger_queue_arn: str = ""
    region: str = "us-east-1"
    trigger_queue_url: str = ""
    scheduler_dlq_arn: str = ""  # where Scheduler puts deliveries it gave up on
    payload_bucket: str = ""  # large payloads (template.yaml PayloadBucket); "": none

    @classmethod
    def from_env(cls) -> Settings:
        """The environment's; without AWS_REGION/AWS_DEFAULT_REGION, the region of the AWS
        config (AWS_PROFILE's, else the default profile's), as boto3 would pick it."""
        env: Mapping[str, str] = os.environ
        if env_region(env) is None:
            env = {**env, "AWS_REGION": configured_region() or "us-east-1"}
        return cls.from_mapping(env)

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, str]) -> Settings:
        """From a deployed stack's outputs (`{OutputKey: OutputValue}`); all must be there."""
        missing = sorted(set(OUTPUT_VARIABLES) - set(outputs))
        if missing:
            raise ValueError(f"the stack has no output {', '.join(missing)}: is it an "
                             "ostinato stack, deployed from the current template.yaml?")
        return cls.from_mapping({var: outputs[key] for key, var in OUTPUT_VARIABLES.items()})

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Read the OSTINATO_* variables from any mapping (the environment, a template)."""
        return cls(
            table_name=env["OSTINATO_TABLE"],
            workflow_queue_url=env["OSTINATO_WORKFLOW_QUEUE_URL"],
            timer_queue_url=env["OSTINATO_TIMER_QUEUE_URL"],
            activity_queue_urls=json.loads(env.get("OSTINATO_ACTIVITY_QUEUE_URLS", "{}")),
            schedule_group=env.get("OSTINATO_SCHEDULE_GROUP", "default"),
            scheduler_role_arn=env.get("OSTINATO_SCHEDULER_ROLE_ARN", ""),
            timer_queue_arn=env.get("OSTINATO_TIMER_QUEUE_ARN", ""),
            trigger_queue_arn=env.get("OSTINATO_TRIGGER_QUEUE_ARN", ""),
            region=env_region(env) or "us-east-1",
            trigger_queue_url=env.get("OSTINATO_TRIGGER_QUEUE_URL", ""),
            scheduler_dlq_arn=env.get("OSTINATO_SCHEDULER_DLQ_ARN", ""),
            payload_bucket=env.get("OSTINATO_PAYLOAD_BUCKET", ""),
        )

    def to_env(self) -> dict[str, str]:
        return {
            "OSTINATO_TABLE": self.table_name,
            "OSTINATO_WORKFLOW_QUEUE_URL": self.workflow_queue_url,
            "OSTINATO_TIMER_QUEUE_URL": self.timer_queue_url,
            "OSTINATO_ACTIVITY_QUEUE_URLS": json.dumps(self.activity_queue_urls),
            "OSTINATO_SCHEDULE_GROUP": self.schedule_group,
            "OSTINATO_SCHEDULER_ROLE_ARN": self.scheduler_role_arn,
            "OSTINATO_TIMER_QUEUE_ARN": self.timer_queue_arn,
            "OSTINATO_TRIGGER_QUEUE_ARN": self.trigger_queue_arn,
            "OSTINATO_TRIGGER_QUEUE_URL": self.trigger_queue_url,
            "OSTINATO_SCHEDULER_DLQ_ARN": self.scheduler_dlq_arn,
            "OSTINATO_PAYLOAD_BUCKET": self.payload_bucket,
        }
