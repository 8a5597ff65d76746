"""template.yaml: lint-clean, and the CloudFormation SAM makes of it wires what the engine needs.

Offline: cfn-lint runs in-process and the SAM transform runs through `samtranslator` as a
library (local CodeUri rewritten to an s3:// URI, a stub managed-policy loader). Each `check_*`
function asserts one property of the generated template; `test_checks_catch_a_broken_template`
breaks the template in one place per check and proves that the check then fails.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ostinato._local.template import load_template

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"

Template = dict[str, Any]

# queue -> (consuming function, its dead-letter queue, FIFO?)
QUEUES = {
    "WorkflowTaskQueue": ("WorkflowTaskFunction", "WorkflowTaskDLQ", True),
    "ActivityQueueDefault": ("ActivityTaskFunction", "ActivityDLQDefault", False),
    "TimerQueue": ("TimerFunction", "TimerDLQ", False),
    "TriggerQueue": ("EventsFunction", "TriggerDLQ", False),
}

# DESIGN.md section 2, "HTTP API", plus the OpenAPI document.
ROUTES = {
    "POST /workflows", "GET /workflows", "GET /workflows/{id}", "GET /workflows/{id}/history",
    "POST /workflows/{id}/signals/{name}", "POST /workflows/{id}/queries/{name}",
    "POST /workflows/{id}/updates/{name}", "POST /workflows/{id}/update-with-start",
    "POST /workflows/{id}/cancel",
    "POST /workflows/{id}/terminate", "POST /callbacks/{token}", "GET /openapi.json",
    "POST /schedules", "GET /schedules", "DELETE /schedules/{name}", "POST /events",
}
# Reachable without SigV4: callback URLs go to third parties (the token is the credential).
PUBLIC_ROUTES = {"POST /callbacks/{token}", "GET /openapi.json"}

GLOBAL_ENV = {
    "OSTINATO_APP", "OSTINATO_TABLE", "OSTINATO_WORKFLOW_QUEUE_URL", "OSTINATO_TIMER_QUEUE_URL",
    "OSTINATO_TIMER_QUEUE_ARN", "OSTINATO_ACTIVITY_QUEUE_URLS", "OSTINATO_SCHEDULE_GROUP",
    "OSTINATO_SCHEDULER_ROLE_ARN", "OSTINATO_TRIGGER_QUEUE_ARN", "OSTINATO_TRIGGER_QUEUE_URL",
    "OSTINATO_SCHEDULER_DLQ_ARN",
}


def arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


# ------------------------------------------------------------------------------ loading
class _NoManagedPolicies:
    """Stands in for samtranslator's IAM-backed loader: the template names no managed policy."""

    def load(self) -> dict[str, str]:
        return {}


def sam_source() -> Template:
    return load_template(TEMPLATE)


def to_cloudformation(source: Template) -> Template:
    """The CloudFormation `sam deploy` would submit for `source`, produced offline."""
    from samtranslator.translator.transform import transform

    source = copy.deepcopy(source)
    artifact = "s3://ostinato-test-artifacts/code.zip"
    function_globals = source.get("Globals", {}).get("Function", {})
    if isinstance(function_globals.get("CodeUri"), str):
        function_globals["CodeUri"] = artifact
    for resource in source["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and isinstance(
                props.get("CodeUri"), str):
            props["CodeUri"] = artifact
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", REGION)  # the translator resolves AWS::Region from it
        return transform(source, {}, _NoManagedPolicies())


@pytest.fixture(scope="module")
def cfn() -> Template:
    return to_cloudformation(sam_source())


def resources_of(cfn: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in cfn["Resources"].items() if r["Type"] == kind}


def _branches(statement: dict[str, Any]) -> list[dict[str, Any]]:
    """A statement, or both of a conditional one's (`Fn::If`) but AWS::NoValue."""
    if set(statement) == {"Fn::If"}:
        return [b for b in statement["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"}]
    return [statement]


def statements(node: Any) -> Iterator[dict[str, Any]]:
    """Every IAM policy statement anywhere under `node` (inline, trust, resource policies),
    those of either branch of a condition included."""
    if isinstance(node, dict):
        if "Statement" in node:
            found = node["Statement"]
            for st in found if isinstance(found, list) else [found]:
                yield from _branches(st)
        for value in node.values():
            yield from statements(value)
    elif isinstance(node, list):
        for value in node:
            yield from statements(value)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(cfn: Template, function: str) -> list[dict[str, Any]]:
    role = cfn["Resources"][f"{function}Role"]
    return list(statements(role["Properties"].get("Policies", [])))


def granted(cfn: Template, function: str, action: str) -> list[Any]:
    """The resources an inline Allow statement of `function`'s role grants `action` on."""
    found: list[Any] = []
    for st in role_statements(cfn, function):
        if st.get("Effect") == "Allow" and action in as_list(st.get("Action", [])):
            found += as_list(st["Resource"])
    return found


# ------------------------------------------------------------------------------ checks
def check_event_sources(cfn: Template) -> None:
    mappings = resources_of(cfn, "AWS::Lambda::EventSourceMapping")
    for name, mapping in mappings.items():
        assert "ReportBatchItemFailures" in mapping["Properties"].get(
            "FunctionResponseTypes", []), f"{name}: no partial batch failures"
    for queue, (function, _, _) in QUEUES.items():
        wired = [m["Properties"] for m in mappings.values()
                 if m["Properties"]["EventSourceArn"] == arn(queue)]
        assert len(wired) == 1, f"{queue} has {len(wired)} event source mappings"
        assert wired[0]["FunctionName"] == {"Ref": function}, f"{queue} -> {wired[0]}"


def check_queues(cfn: Template) -> None:
    res = cfn["Resources"]
    for queue, (_, dlq, fifo) in QUEUES.items():
        props, dlq_props = res[queue]["Properties"], res[dlq]["Properties"]
        assert bool(props.get("FifoQueue")) is fifo, f"{queue}: FifoQueue"
        assert bool(dlq_props.get("FifoQueue")) is fifo, f"{dlq}: must match {queue}'s FIFO-ness"
        redrive = props.get("RedrivePolicy")
        assert redrive, f"{queue}: no RedrivePolicy"
        assert redrive["deadLetterTargetArn"] == arn(dlq), f"{queue}: redrive target"
        assert 1 <= int(redrive["maxReceiveCount"]) <= 100, f"{queue}: maxReceiveCount"
        assert "RedrivePolicy" not in dlq_props, f"{dlq} redrives further"
        assert dlq_props.get("MessageRetentionPeriod") == 1_209_600, f"{dlq}: keep 14 days"
    for name, queue in resources_of(cfn, "AWS::SQS::Queue").items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") or props.get("KmsMasterKeyId"), f"{name}: SSE"


def check_visibility_covers_six_timeouts(cfn: Template) -> None:
    """Lambda recommends a source queue's visibility timeout of at least 6x the function's
    timeout (it may retry a batch's invocation within it): every SQS event source."""
    functions = resources_of(cfn, "AWS::Lambda::Function")
    mappings = resources_of(cfn, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) >= len(QUEUES), sorted(mappings)
    for name, mapping in mappings.items():
        props = mapping["Properties"]
        (queue,) = [q for q in resources_of(cfn, "AWS::SQS::Queue") if props["EventSourceArn"]
                    == arn(q)]
        function = props["FunctionName"]["Ref"]
        timeout = int(functions[function]["Properties"].get("Timeout", 3))
        visibility = int(cfn["Resources"][queue]["Properties"].get("VisibilityTimeout", 30))
        assert visibility >= 6 * timeout, \
            f"{name}: {queue} visibility {visibility}s < 6 x {function} timeout {timeout}s"


def check_concurrency_caps(cfn: Template) -> None:
    """Every SQS event source is capped (ScalingConfig) by a parameter of at least 2."""
    for name, mapping in resources_of(cfn, "AWS::Lambda::EventSourceMapping").items():
        cap = mapping["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
        assert isinstance(cap, dict) and set(cap) == {"Ref"}, f"{name}: no parameter cap {cap}"
        param = cfn["Parameters"][cap["Ref"]]
        assert param["Type"] == "Number", f"{cap['Ref']}: {param}"
        assert 2 <= int(param["MinValue"]) <= int(param["Default"]) <= int(
            param["MaxValue"]) <= 1000, f"{cap['Ref']}: Lambda allows 2..1000: {param}"


def check_table(cfn: Template) -> None:
    (name, table), = resources_of(cfn, "AWS::DynamoDB::Table").items()
    assert name == "WorkflowTable", name
    props = table["Properties"]
    assert props.get("BillingMode") == "PAY_PER_REQUEST", props.get("BillingMode")
    pitr = props.get("PointInTimeRecoverySpecification", {})
    assert pitr.get("PointInTimeRecoveryEnabled") is True, "no point-in-time recovery"
    assert props.get("SSESpecification", {}).get("SSEEnabled") is True, "no SSE"
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                  {"AttributeName": "sk", "KeyType": "RANGE"}], props["KeySchema"]
    indexes = {i["IndexName"]: i for i in props.get("GlobalSecondaryIndexes", [])}
    # the indexes are the store's, key for key and attribute for attribute
    from ostinato._aws.store import LISTED
    assert set(indexes) == {"by_status", "by_type", "by_start"}, sorted(indexes)
    for index, hash_key in (("by_status", "ls"), ("by_type", "lt"), ("by_start", "la")):
        assert indexes[index]["KeySchema"] == [
            {"AttributeName": hash_key, "KeyType": "HASH"},
            {"AttributeName": "start_time", "KeyType": "RANGE"}], index
        projection = indexes[index]["Projection"]
        assert projection["ProjectionType"] == "INCLUDE", index  # never ALL: args stay out
        assert sorted(projection["NonKeyAttributes"]) == sorted(LISTED), index
        assert "args" not in projection["NonKeyAttributes"]
    assert table.get("DeletionPolicy") == "Retain", "histories must survive a stack delete"


def check_no_wildcard_actions(cfn: Template) -> None:
    seen = 0
    for st in statements(cfn["Resources"]):
        assert "NotAction" not in st, f"NotAction grants everything else: {st}"
        for action in as_list(st.get("Action", [])):
            seen += 1
            if st["Effect"] == "Deny":
                continue  # a wildcard denies more, never grants (the bucket's TLS-only rule)
            assert "*" not in str(action), f"wildcard action {action!r} in {st}"
    assert seen >= 20, f"only {seen} actions found: the walk missed the policies"


def check_least_privilege(cfn: Template) -> None:
    table = [arn("WorkflowTable")]
    table_and_indexes = [arn("WorkflowTable"), {"Fn::Sub": "${WorkflowTable.Arn}/index/*"}]
    schedules = {"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}"
                            ":schedule/${TimerScheduleGroup}/*"}
    # the API manages recurring schedules only (sched-*), never the engine's timers (ost-*)
    recurring = {"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}"
                            ":schedule/${TimerScheduleGroup}/sched-*"}
    default_bus = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}"
                              ":event-bus/default"}
    for function in ("WorkflowTaskFunction", "ActivityTaskFunction", "TimerFunction",
                     "ApiFunction", "EventsFunction"):
        sts = role_statements(cfn, function)
        assert sts, f"{function}: no inline policy"
        for st in sts:
            assert st["Effect"] == "Allow", st
            resources = as_list(st["Resource"])
            assert "*" not in resources, f"{function}: Resource '*' in {st}"
            services = {a.split(":")[0] for a in as_list(st["Action"])}
            if services == {"dynamodb"}:
                allowed = table_and_indexes if function == "ApiFunction" else table
                assert all(r in allowed for r in resources), f"{function}: {st}"
            elif services == {"sqs"}:
                assert all(r in [arn(q) for q in QUEUES] for r in resources), f"{function}: {st}"
            elif services == {"scheduler"}:
                allowed_schedules = recurring if function == "ApiFunction" else schedules
                assert resources == [allowed_schedules], f"{function}: {st}"
            elif services == {"events"}:
                assert function == "ApiFunction", f"{function} may not publish events: {st}"
                assert as_list(st["Action"]) == ["events:PutEvents"], st
                assert resources == [default_bus], f"{function}: {st}"
                condition = st.get("Condition", {}).get("StringEquals", {})
                assert condition.get("events:source") == {"Ref": "TriggerEventSources"}, \
                    f"{function}: publishes any source: {st}"
            elif services == {"s3"}:  # the payload bucket's objects, nothing else
                assert as_list(st["Action"]) == ["s3:GetObject", "s3:PutObject"], st
                assert resources == [{"Fn::Sub": "${PayloadBucket.Arn}/*"}], f"{function}: {st}"
            elif services == {"kms"}:  # the payload key, only when one is configured
                assert sorted(as_list(st["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
                assert resources == [{"Ref": "PayloadKmsKeyArn"}], f"{function}: {st}"
                assert st in conditional_statements(cfn, function, "HasPayloadKey"), st
            elif services == {"iam"}:
                assert as_list(st["Action"]) == ["iam:PassRole"], st
                assert resources == [arn("SchedulerRole")], f"{function}: PassRole {st}"
                assert st["Condition"]["StringEquals"]["iam:PassedToService"] == \
                    "scheduler.amazonaws.com", st
            else:
                raise AssertionError(f"{function}: one service per statement: {st}")
    for action in ("dynamodb:GetItem", "dynamodb:PutItem"):
        assert granted(cfn, "ApiFunction", action) == table, f"ApiFunction: {action}"
    assert sorted(map(json.dumps, granted(cfn, "ApiFunction", "dynamodb:Query"))) == sorted(
        map(json.dumps, table_and_indexes)), "ApiFunction: dynamodb:Query"
    assert granted(cfn, "ApiFunction", "sqs:SendMessage") == [arn("WorkflowTaskQueue")], "api sqs"
    assert granted(cfn, "ApiFunction", "iam:PassRole") == [arn("SchedulerRole")], "api PassRole"
    assert granted(cfn, "ApiFunction", "dynamodb:DeleteItem") == table, \
        "api deletes schedule items"
    assert granted(cfn, "EventsFunction", "sqs:SendMessage") == [
        arn("WorkflowTaskQueue"), arn("TriggerQueue")], \
        "events function sends wake-ups (and re-sends the trigger messages it did not start)"
    for action in ("scheduler:CreateSchedule", "iam:PassRole", "events:PutEvents"):
        assert granted(cfn, "EventsFunction", action) == [], f"events function: {action}"
    assert granted(cfn, "WorkflowTaskFunction", "iam:PassRole") == [arn("SchedulerRole")], \
        "decider PassRole"

    role = cfn["Resources"]["SchedulerRole"]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}], trust
    assert all(s["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
               for s in trust), trust
    sts = list(statements(role["Policies"]))
    assert {a for st in sts for a in as_list(st["Action"])} == {"sqs:SendMessage"}, sts
    targets = sorted(json.dumps(r) for st in sts for r in as_list(st["Resource"]))
    assert targets == sorted(json.dumps(arn(q)) for q in ("TimerQueue", "TriggerQueue",
                                                          "SchedulerDLQ")), \
        f"scheduler role may send to {targets}"


# What the handlers' code calls beyond what an SQS event source grants (receive, delete,
# get attributes): (function, action, resource). Each must be granted exactly there.
CALLS = [
    # retry_soon: deferred workflow-task messages come back after deferral_delay(); release:
    # the time guard makes the groups it did not start visible again at once
    ("WorkflowTaskFunction", "sqs:ChangeMessageVisibility", arn("WorkflowTaskQueue")),
    # requeue: the time guard sends the records it did not start again, to their own queue
    ("ActivityTaskFunction", "sqs:SendMessage", arn("ActivityQueueDefault")),
    ("TimerFunction", "sqs:SendMessage", arn("TimerQueue")),
    ("EventsFunction", "sqs:SendMessage", arn("TriggerQueue")),
]


def check_code_calls_are_granted(cfn: Template) -> None:
    for function, action, resource in CALLS:
        assert resource in granted(cfn, function, action), \
            f"{function} calls {action} on {resource} without a grant"


ALARM_ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def _queue_alarms(cfn: Template, metric: str) -> dict[str, dict[str, Any]]:
    """Queue logical id -> the properties of the alarm on its SQS `metric`."""
    found: dict[str, dict[str, Any]] = {}
    for name, alarm in resources_of(cfn, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        if props.get("Namespace") == "AWS/SQS" and props.get("MetricName") == metric:
            (dimension,) = props["Dimensions"]
            assert dimension["Name"] == "QueueName", f"{name}: {dimension}"
            queue, attribute = dimension["Value"]["Fn::GetAtt"]
            assert attribute == "QueueName", f"{name}: {dimension}"
            assert queue not in found, f"two {metric} alarms on {queue}"
            found[queue] = props
    return found


def _function_error_alarms(cfn: Template) -> dict[str, dict[str, Any]]:
    """Function logical id -> the properties of the alarm on its Lambda Errors rate."""
    found: dict[str, dict[str, Any]] = {}
    for alarm in resources_of(cfn, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        stats = {m["Id"]: m["MetricStat"]["Metric"] for m in props.get("Metrics", [])
                 if "MetricStat" in m}
        if stats.get("errors", {}).get("MetricName") == "Errors":
            (dimension,) = stats["errors"]["Dimensions"]
            assert stats["invocations"]["Dimensions"] == [dimension], props
            assert stats["invocations"]["MetricName"] == "Invocations", props
            found[dimension["Value"]["Ref"]] = props
    return found


def check_alarms(cfn: Template) -> None:
    """An alarm on every DLQ's depth, on every source queue's oldest message, on every queue
    consumer's failed invocations; each notifies the optional AlarmTopicArn."""
    queues = resources_of(cfn, "AWS::SQS::Queue")
    mappings = resources_of(cfn, "AWS::Lambda::EventSourceMapping").values()
    sources = {m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0] for m in mappings}
    dlqs = set(queues) - sources
    assert {"WorkflowTaskDLQ", "ActivityDLQDefault", "TimerDLQ", "TriggerDLQ",
            "SchedulerDLQ"} <= dlqs, sorted(dlqs)
    depth = _queue_alarms(cfn, "ApproximateNumberOfMessagesVisible")
    assert set(depth) == dlqs, f"DLQs without a depth alarm: {sorted(dlqs - set(depth))}"
    for queue, props in depth.items():
        assert (props["ComparisonOperator"], props["Threshold"]) == (
            "GreaterThanThreshold", 0), f"{queue}: alarm on the first dead letter"
        assert props["Statistic"] == "Maximum", queue
    age = _queue_alarms(cfn, "ApproximateAgeOfOldestMessage")
    assert set(age) == sources, f"source queues without an age alarm: {sources - set(age)}"
    for queue, props in age.items():
        assert props["Threshold"] in ({"Ref": "QueueAgeAlarmSeconds"},
                                      {"Ref": "DelayedQueueAgeAlarmSeconds"}), queue
    consumers = {m["Properties"]["FunctionName"]["Ref"] for m in mappings}
    errors = _function_error_alarms(cfn)
    assert set(errors) >= consumers, f"consumers without an error alarm: {consumers - set(errors)}"
    for function, props in errors.items():
        assert props["Threshold"] == {"Ref": "ErrorRateAlarmPercent"}, function
    for name, alarm in resources_of(cfn, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        assert props.get("AlarmActions") == props.get("OKActions") == ALARM_ACTIONS, name
        assert props.get("TreatMissingData") == "notBreaching", name
    assert cfn["Parameters"]["AlarmTopicArn"]["Default"] == "", "the topic is optional"
    assert cfn["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}


def check_scheduler_dead_letters(cfn: Template) -> None:
    """Scheduler gives up on a delivery after its retry policy: into a DLQ, not into nothing."""
    props = cfn["Resources"]["SchedulerDLQ"]["Properties"]
    assert not props.get("FifoQueue"), "Scheduler DLQs must be standard queues"
    assert props.get("MessageRetentionPeriod") == 1_209_600, "keep dead letters 14 days"
    role = cfn["Resources"]["SchedulerRole"]["Properties"]
    sends = [r for st in statements(role["Policies"]) if "sqs:SendMessage" in
             as_list(st["Action"]) for r in as_list(st["Resource"])]
    assert arn("SchedulerDLQ") in sends, "Scheduler may not deliver to its DLQ"
    for name, function in resources_of(cfn, "AWS::Lambda::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables.get("OSTINATO_SCHEDULER_DLQ_ARN") == arn("SchedulerDLQ"), name


def check_http_api(cfn: Template) -> None:
    api = cfn["Resources"]["HttpApi"]
    assert api["Type"] == "AWS::ApiGatewayV2::Api", api["Type"]
    routes, public = set(), set()
    for path, methods in api["Properties"]["Body"]["paths"].items():
        for method, op in methods.items():
            route = f"{method.upper()} {path}"
            routes.add(route)
            uri = op["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            assert "${ApiFunction.Arn}" in uri, f"{route} -> {uri}"
            if op.get("security") != [{"AWS_IAM": []}]:
                public.add(route)
    assert routes == ROUTES, f"missing {ROUTES - routes}, unexpected {routes - ROUTES}"
    assert public == PUBLIC_ROUTES, f"routes without IAM auth: {sorted(public)}"
    permissions = resources_of(cfn, "AWS::Lambda::Permission")
    assert len(permissions) == len(ROUTES), f"{len(permissions)} invoke permissions"
    assert all(p["Properties"]["FunctionName"] == {"Ref": "ApiFunction"}
               for p in permissions.values()), "invoke permission for another function"
    assert "${HttpApi}" in cfn["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"], "ApiUrl output"


def check_functions(cfn: Template) -> None:
    functions = resources_of(cfn, "AWS::Lambda::Function")
    assert set(functions) == {"WorkflowTaskFunction", "ActivityTaskFunction", "TimerFunction",
                              "ApiFunction", "EventsFunction"}, sorted(functions)
    for name, function in functions.items():
        props = function["Properties"]
        module = props["Handler"].rsplit(".", 1)[0]
        assert module.startswith("functions."), f"{name}: {props['Handler']}"
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{name}: no {module}"
        env = set(props["Environment"]["Variables"])
        assert env >= GLOBAL_ENV, f"{name}: missing {GLOBAL_ENV - env}"
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        variables = props["Environment"]["Variables"]
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "ostinato", f"{name}: metrics"
        assert variables["OSTINATO_TRACE_SUBSEGMENTS"] == {"Ref": "TraceSubsegments"}, name
        assert "LoggingConfig" in props, f"{name}: no log group with a retention"
    assert functions["ApiFunction"]["Properties"]["Timeout"] <= 29, "API Gateway gives up at 30s"


def check_triggers(cfn: Template) -> None:
    """Default-bus events of the trigger sources reach the trigger queue, and only they may."""
    rules = resources_of(cfn, "AWS::Events::Rule")
    assert set(rules) == {"TriggerRule"}, sorted(rules)
    rule = rules["TriggerRule"]["Properties"]
    assert rule.get("EventBusName", "default") == "default", rule
    assert rule["State"] == "ENABLED", rule
    assert rule["EventPattern"] == {"source": {"Ref": "TriggerEventSources"}}, \
        f"the rule must filter on the configured sources: {rule['EventPattern']}"
    (target,) = rule["Targets"]
    assert target["Arn"] == arn("TriggerQueue"), target
    assert target.get("DeadLetterConfig", {}).get("Arn") == arn("TriggerDLQ"), target
    param = cfn["Parameters"]["TriggerEventSources"]
    assert param["Type"] == "CommaDelimitedList" and param["Default"], param

    policies = resources_of(cfn, "AWS::SQS::QueuePolicy")
    (policy,) = policies.values()
    assert sorted(map(json.dumps, policy["Properties"]["Queues"])) == sorted(
        json.dumps({"Ref": q}) for q in ("TriggerQueue", "TriggerDLQ")), policy
    sts = list(statements(policy["Properties"]["PolicyDocument"]))
    assert sts and all(st["Principal"] == {"Service": "events.amazonaws.com"} for st in sts), sts
    assert all(as_list(st["Action"]) == ["sqs:SendMessage"] for st in sts), sts
    assert all(st.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn")
               == arn("TriggerRule") for st in sts), \
        f"any rule could send to the trigger queue: {sts}"


def conditional_statements(cfn: Template, function: str, condition: str) -> list[Any]:
    """The statements of `function`'s role that exist only when `condition` holds."""
    found = []
    for policy in cfn["Resources"][f"{function}Role"]["Properties"].get("Policies", []):
        for st in as_list(policy["PolicyDocument"]["Statement"]):
            if set(st) == {"Fn::If"} and st["Fn::If"][0] == condition:
                assert st["Fn::If"][2] == {"Ref": "AWS::NoValue"}, st
                found.append(st["Fn::If"][1])
    return found


def check_payload_bucket(cfn: Template) -> None:
    """Encrypted, never public, TLS only, kept like the table, objects expiring by prefix; its
    name reaches the functions and the outputs; every function may read and write objects."""
    bucket = cfn["Resources"]["PayloadBucket"]
    props = bucket["Properties"]
    assert bucket.get("DeletionPolicy") == "Retain", "histories reference its objects"
    (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True}
    rules = props["LifecycleConfiguration"]["Rules"]
    messages = [r for r in rules if isinstance(r, dict) and r.get("Prefix") == "messages/"]
    assert messages and messages[0]["ExpirationInDays"] > 14, "a queue keeps 14 days"
    kept = [r["Fn::If"] for r in rules if isinstance(r, dict) and "Fn::If" in r]
    assert kept and kept[0][0] == "HasPayloadRetention" and kept[0][1]["Prefix"] == "payloads/"
    policy = resources_of(cfn, "AWS::S3::BucketPolicy")["PayloadBucketPolicy"]["Properties"]
    (tls,) = as_list(policy["PolicyDocument"]["Statement"])
    assert tls["Effect"] == "Deny" and tls["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}}
    for function in ("WorkflowTaskFunction", "ActivityTaskFunction", "TimerFunction",
                     "ApiFunction", "EventsFunction"):
        env = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert env["OSTINATO_PAYLOAD_BUCKET"] == {"Ref": "PayloadBucket"}, function
        for action in ("s3:GetObject", "s3:PutObject"):
            assert granted(cfn, function, action) == [
                {"Fn::Sub": "${PayloadBucket.Arn}/*"}], (function, action)
        (key,) = conditional_statements(cfn, function, "HasPayloadKey")
        assert sorted(key["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"], function
        always = [st for policy in cfn["Resources"][f"{function}Role"]["Properties"]["Policies"]
                  for st in as_list(policy["PolicyDocument"]["Statement"])
                  if set(st) != {"Fn::If"}]
        assert not [st for st in always if any(str(a).startswith("kms:") for a in as_list(
            st.get("Action", [])))], f"{function}: KMS granted without a key configured"
    assert cfn["Outputs"]["PayloadBucketName"]["Value"] == {"Ref": "PayloadBucket"}


CHECKS: dict[str, Callable[[Template], None]] = {
    "event_sources": check_event_sources,
    "queues": check_queues,
    "visibility_covers_six_timeouts": check_visibility_covers_six_timeouts,
    "concurrency_caps": check_concurrency_caps,
    "table": check_table,
    "no_wildcard_actions": check_no_wildcard_actions,
    "least_privilege": check_least_privilege,
    "code_calls_are_granted": check_code_calls_are_granted,
    "alarms": check_alarms,
    "scheduler_dead_letters": check_scheduler_dead_letters,
    "http_api": check_http_api,
    "functions": check_functions,
    "triggers": check_triggers,
    "payload_bucket": check_payload_bucket,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_generated_cloudformation(cfn: Template, name: str) -> None:
    CHECKS[name](cfn)


# ------------------------------------------------------------------------------ lint
def lint_errors(text: str) -> list[str]:
    from cfnlint.api import lint

    return [f"{m.rule.id} line {m.linenumber}: {m.message}"
            for m in lint(text, regions=[REGION]) if m.rule.id.startswith("E")]


def test_cfn_lint_reports_no_errors() -> None:
    assert lint_errors(TEMPLATE.read_text()) == []


def test_cfn_lint_catches_a_bad_reference() -> None:
    broken = TEMPLATE.read_text().replace("!GetAtt TimerQueue.Arn", "!GetAtt TimerQueue.Nope")
    assert any(e.startswith("E1010") for e in lint_errors(broken))


# ------------------------------------------------------------------------------ can fail
def _props(t: Template, name: str) -> dict[str, Any]:
    return t["Resources"][name]["Properties"]


def _event(t: Template, function: str) -> dict[str, Any]:
    (event,) = [e for e in _props(t, function)["Events"].values() if e["Type"] == "SQS"]
    return event["Properties"]


def _add_statement(t: Template, function: str, statement: dict[str, Any]) -> None:
    _props(t, function)["Policies"][0]["Statement"].append(statement)


def _statement(t: Template, function: str, sid: str) -> dict[str, Any]:
    (st,) = [st for st in _props(t, function)["Policies"][0]["Statement"]
             if st.get("Sid") == sid]
    return st


def _drop_statement(t: Template, function: str, sid: str) -> None:
    sts = _props(t, function)["Policies"][0]["Statement"]
    sts[:] = [st for st in sts if st.get("Sid") != sid]


MUTATIONS: dict[str, tuple[str, Callable[[Template], None]]] = {
    "no partial batch failures": (
        "event_sources", lambda t: _event(t, "TimerFunction").pop("FunctionResponseTypes")),
    "queue wired to the wrong function": (
        "event_sources", lambda t: _event(t, "ActivityTaskFunction").update(
            Queue={"Fn::GetAtt": ["TimerQueue", "Arn"]})),
    "standard workflow-task DLQ": (
        "queues", lambda t: _props(t, "WorkflowTaskDLQ").pop("FifoQueue")),
    "standard workflow-task queue": (
        "queues", lambda t: _props(t, "WorkflowTaskQueue").update(FifoQueue=False)),
    "no redrive": ("queues", lambda t: _props(t, "TimerQueue").pop("RedrivePolicy")),
    "redrive to another DLQ": (
        "queues", lambda t: _props(t, "ActivityQueueDefault")["RedrivePolicy"].update(
            deadLetterTargetArn={"Fn::GetAtt": ["TimerDLQ", "Arn"]})),
    "visibility below 6 function timeouts": (
        "visibility_covers_six_timeouts", lambda t: _props(t, "ActivityQueueDefault").update(
            VisibilityTimeout=360)),
    "function timeout raised above its queue's sixth": (
        "visibility_covers_six_timeouts", lambda t: _props(t, "TimerFunction").update(
            Timeout=60)),
    "uncapped event source": ("concurrency_caps", lambda t: _event(
        t, "ActivityTaskFunction").pop("ScalingConfig")),
    "cap below Lambda's minimum": ("concurrency_caps", lambda t: t["Parameters"][
        "TimerMaxConcurrency"].update(MinValue=1, Default=1)),
    "hard-coded cap": ("concurrency_caps", lambda t: _event(t, "EventsFunction")[
        "ScalingConfig"].update(MaximumConcurrency=5)),
    "provisioned table": ("table", lambda t: _props(t, "WorkflowTable").update(
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})),
    "no PITR": ("table", lambda t: _props(t, "WorkflowTable")[
        "PointInTimeRecoverySpecification"].update(PointInTimeRecoveryEnabled=False)),
    "no SSE": ("table", lambda t: _props(t, "WorkflowTable").pop("SSESpecification")),
    "missing index": ("table", lambda t: _props(t, "WorkflowTable")[
        "GlobalSecondaryIndexes"].pop()),
    "wildcard action": ("no_wildcard_actions", lambda t: _add_statement(
        t, "TimerFunction", {"Effect": "Allow", "Action": "sqs:*",
                             "Resource": {"Fn::GetAtt": ["TimerQueue", "Arn"]}})),
    "wildcard action in the scheduler role": (
        "no_wildcard_actions", lambda t: _props(t, "SchedulerRole")["Policies"][0][
            "PolicyDocument"]["Statement"][0].update(Action="sqs:Send*")),
    "table access beyond the table": ("least_privilege", lambda t: _add_statement(
        t, "ActivityTaskFunction", {"Effect": "Allow", "Action": "dynamodb:GetItem",
                                    "Resource": "*"})),
    "PassRole on any role": ("least_privilege", lambda t: _add_statement(
        t, "TimerFunction", {"Effect": "Allow", "Action": "iam:PassRole",
                             "Resource": "arn:aws:iam::123456789012:role/admin"})),
    "scheduler may send anywhere": (
        "least_privilege", lambda t: _props(t, "SchedulerRole")["Policies"][0][
            "PolicyDocument"]["Statement"][0]["Resource"].append(
                {"Fn::GetAtt": ["WorkflowTaskQueue", "Arn"]})),
    "api cannot query indexes": ("least_privilege", lambda t: _props(t, "ApiFunction")[
        "Policies"][0]["Statement"][1].update(Resource={"Fn::GetAtt": ["WorkflowTable", "Arn"]})),
    "public payload bucket": ("payload_bucket", lambda t: _props(t, "PayloadBucket")[
        "PublicAccessBlockConfiguration"].update(RestrictPublicBuckets=False)),
    "payload key granted unconditionally": ("payload_bucket", lambda t: _add_statement(
        t, "TimerFunction", {"Effect": "Allow", "Action": ["kms:Decrypt"],
                             "Resource": {"Ref": "PayloadKmsKeyArn"}})),
    "missing route": ("http_api", lambda t: _props(t, "ApiFunction")["Events"].pop(
        "TerminateWorkflow")),
    "unauthenticated control route": ("http_api", lambda t: _props(t, "ApiFunction")[
        "Events"]["CancelWorkflow"]["Properties"].update(Auth={"Authorizer": "NONE"})),
    "unknown handler module": ("functions", lambda t: _props(t, "TimerFunction").update(
        Handler="functions.timers.app.handler")),
    "slow api": ("functions", lambda t: _props(t, "ApiFunction").update(Timeout=60)),
    "rule matching every source": ("triggers", lambda t: _props(t, "TriggerRule").update(
        EventPattern={"source": [{"prefix": ""}]})),
    "rule without a DLQ": ("triggers", lambda t: _props(t, "TriggerRule")["Targets"][0].pop(
        "DeadLetterConfig")),
    "any rule may feed the trigger queue": ("triggers", lambda t: _props(
        t, "TriggerQueuePolicy")["PolicyDocument"]["Statement"][0].pop("Condition")),
    "api publishes any source": ("least_privilege", lambda t: _statement(
        t, "ApiFunction", "PublishTriggerEvents").pop("Condition")),
    "api may delete timers": ("least_privilege", lambda t: _statement(
        t, "ApiFunction", "Schedules").update(Resource={"Fn::Sub": (
            "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}"
            ":schedule/${TimerScheduleGroup}/*")})),
    "decider cannot defer": ("code_calls_are_granted", lambda t: _drop_statement(
        t, "WorkflowTaskFunction", "Defer")),
    "events function cannot requeue": ("code_calls_are_granted", lambda t: _statement(
        t, "EventsFunction", "WakeDeciderAndRequeue").update(
            Resource={"Fn::GetAtt": ["WorkflowTaskQueue", "Arn"]})),
    "DLQ without an alarm": ("alarms", lambda t: t["Resources"].pop("TimerDLQAlarm")),
    "new DLQ without an alarm": ("alarms", lambda t: t["Resources"].update(
        ExtraDLQ={"Type": "AWS::SQS::Queue", "Properties": {"SqsManagedSseEnabled": True}})),
    "source queue without an age alarm": ("alarms", lambda t: t["Resources"].pop(
        "WorkflowTaskQueueAgeAlarm")),
    "decider errors unwatched": ("alarms", lambda t: t["Resources"].pop(
        "WorkflowTaskErrorsAlarm")),
    "alarm that notifies nobody": ("alarms", lambda t: _props(t, "ActivityDLQDefaultAlarm")
                                   .pop("AlarmActions")),
    "alarm only from the second dead letter": ("alarms", lambda t: _props(
        t, "SchedulerDLQAlarm").update(Threshold=1)),
    "scheduler cannot dead-letter": ("scheduler_dead_letters", lambda t: _props(
        t, "SchedulerRole")["Policies"][0]["PolicyDocument"]["Statement"][0]["Resource"].pop()),
    "FIFO scheduler DLQ": ("scheduler_dead_letters", lambda t: _props(t, "SchedulerDLQ")
                           .update(FifoQueue=True)),
    "events function unwired": ("event_sources", lambda t: _event(t, "EventsFunction").update(
        Queue={"Fn::GetAtt": ["TimerQueue", "Arn"]})),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_checks_catch_a_broken_template(mutation: str) -> None:
    check, mutate = MUTATIONS[mutation]
    source = sam_source()
    mutate(source)
    with pytest.raises(AssertionError):
        CHECKS[check](to_cloudformation(source))


def test_every_check_is_exercised_by_a_mutation() -> None:
    assert {check for check, _ in MUTATIONS.values()} == set(CHECKS)


# ------------------------------------------------------------------------------ sam build
FUNCTIONS = [name for name, r in sam_source()["Resources"].items()
             if r["Type"] == "AWS::Serverless::Function"]


def makefile_variables() -> dict[str, str]:
    return dict(re.findall(r"^(\w+) :?\??= *(.*)$", (ROOT / "Makefile").read_text(), re.M))


def test_every_function_is_built_byte_compiled_by_the_makefile() -> None:
    """`sam build` runs `make build-<LogicalId>` for every function, in place, with the
    template's Python and architecture (pycs are version-specific; wheels are per platform)."""
    source = sam_source()
    assert source["Globals"]["Function"]["CodeUri"] == "."
    makefile = (ROOT / "Makefile").read_text()
    variables = makefile_variables()
    for name in FUNCTIONS:
        resource = source["Resources"][name]
        assert resource.get("Metadata", {}).get("BuildMethod") == "makefile", name
        assert "CodeUri" not in resource["Properties"] and "Runtime" not in resource["Properties"]
        assert name in variables["FUNCTIONS"].split(), name
    assert "$(addprefix build-,$(FUNCTIONS)):" in makefile
    runtime = source["Globals"]["Function"]["Runtime"]
    assert runtime == f"python{variables['RUNTIME']}"
    arch = {"arm64": "aarch64", "x86_64": "x86_64"}[source["Globals"]["Function"]
                                                     ["Architectures"][0]]
    assert variables["PLATFORM"] == f"manylinux2014_{arch}"
    with (ROOT / "samconfig.toml").open("rb") as f:
        assert tomllib.load(f)["default"]["build"]["parameters"]["build_in_source"] is True


def test_the_build_ships_every_module_byte_compiled(tmp_path: Path) -> None:
    """scripts/lambda_build.py (dependencies left out: no network) copies the root minus what
    is local-only, puts the package on top, and byte-compiles everything with unchecked-hash
    pycs: the interpreter uses them without reading the sources, so a cold start compiles
    nothing (proved by breaking a source after the build)."""
    import importlib.util
    import subprocess
    import sys

    out = tmp_path / "ApiFunction"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "lambda_build.py"), "--artifacts",
                    str(out), "--no-deps"], check=True)
    for present in ("functions/api/app.py", "examples", "ostinato/_core/wire.py",
                    "ostinato/lambda_handlers.py"):
        assert (out / present).exists(), present
    for absent in (".venv", ".git", "src", ".dynamodb-local", "node_modules"):
        assert not (out / absent).exists(), absent
    sources = list(out.rglob("*.py"))
    assert len(sources) > 100
    for source in sources:
        cached = Path(importlib.util.cache_from_source(str(source)))
        assert cached.exists(), source
        flags = int.from_bytes(cached.read_bytes()[4:8], "little")
        assert flags == 0b01, (source, flags)  # hash-based, source never checked
    (out / "ostinato" / "_core" / "wire.py").write_text("raise SystemExit('compiled at start')\n")
    site = [p for p in sys.path if p.endswith("site-packages")]
    run = subprocess.run([sys.executable, "-S", "-c", "import ostinato._core.wire, sys; "
                          "print(ostinato._core.wire.__file__)"], cwd=out, capture_output=True,
                         text=True, env={"PYTHONPATH": os.pathsep.join([str(out), *site]),
                                         "PYTHONDONTWRITEBYTECODE": "1"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(out / "ostinato" / "_core" / "wire.py")


def test_the_build_refuses_another_python(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "lambda_build.py"),
                          "--artifacts", str(tmp_path / "x"), "--python-version", "3.9",
                          "--no-deps"], capture_output=True, text=True)
    assert run.returncode != 0 and "python3.9" in run.stderr
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------ names
def test_schedule_group_name_fits_any_stack_name():
    """Group names are at most 64 characters of [0-9a-zA-Z-_.]; stack names up to 128."""
    import re
    import uuid

    from ostinato._local.template import Stack, resolver

    stack_name = "s" + "-0123456789abcdef" * 7 + "x" * 8
    assert len(stack_name) == 128
    stack = Stack(pseudo={"AWS::StackName": stack_name, "AWS::Region": REGION,
                          "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
                          "AWS::StackId": f"arn:aws:cloudformation:{REGION}:123456789012:"
                                          f"stack/{stack_name}/{uuid.uuid4()}"})
    source = sam_source()
    name = resolver(source, stack)(source["Resources"]["TimerScheduleGroup"]["Properties"]["Name"])
    assert len(name) <= 64 and re.fullmatch(r"[0-9a-zA-Z\-_.]+", name), name
    # and the generated CloudFormation still names it so (the transform keeps it)
    cfn_name = to_cloudformation(source)["Resources"]["TimerScheduleGroup"]["Properties"]["Name"]
    assert resolver(source, stack)(cfn_name) == name
