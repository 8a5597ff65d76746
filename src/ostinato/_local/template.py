"""Read `template.yaml` and create its stateful resources on an emulated AWS.

The local stack and the test environment build the table, queues and schedule group from the
same template SAM deploys, and resolve the functions' environment variables from it, so the two
cannot drift. Only what the stack uses is understood: tables, queues, schedule groups, buckets,
and the intrinsics Ref, GetAtt (.Arn), Sub, Join, Select, Split and If (with the template's
Conditions: Equals, Not, And, Or; AWS::NoValue drops the item).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: The account id of every local stack (moto's default account), defined here only.
ACCOUNT = "123456789012"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns `!Ref x` into `{"Ref": x}` and `!GetAtt a.b` into GetAtt."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: str | Path) -> dict[str, Any]:
    with open(path) as fh:
        return yaml.load(fh, Loader=_CfnLoader)


def default_template_path() -> Path:
    """`./template.yaml` if present, else the one beside the source tree."""
    here = Path.cwd() / "template.yaml"
    if here.exists():
        return here
    return Path(__file__).resolve().parents[3] / "template.yaml"


@dataclass
class QueueMapping:
    """An SQS event source: the queue a function is triggered by."""

    function: str
    handler: str
    queue_url: str
    batch_size: int
    fifo: bool
    timeout: float = 300.0  # the function's Timeout, seconds
    #: the most invocations it runs at once (ScalingConfig MaximumConcurrency; without one,
    #: the five batches Lambda's SQS pollers start with)
    concurrency: int = 5


@dataclass
class Stack:
    """What `create` made: physical ids, ARNs, resolved function environment, triggers."""

    refs: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    queue_mappings: list[QueueMapping] = field(default_factory=list)
    queue_urls_by_arn: dict[str, str] = field(default_factory=dict)
    code_root: Path = Path(".")
    pseudo: dict[str, str] = field(default_factory=dict)
    schedule_groups: list[str] = field(default_factory=list)


def pseudo_parameters(stack_name: str, region: str = "us-east-1") -> dict[str, str]:
    """The pseudo parameters of a local stack (its StackId's UUID derives from its name)."""
    stack_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"ostinato-local:{stack_name}")
    return {"AWS::StackName": stack_name, "AWS::Region": region, "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/{stack_name}/"
                            f"{stack_uuid}"}


def resolver(template: dict[str, Any], stack: Stack,
             parameters: dict[str, Any] | None = None) -> Callable[[Any], Any]:
    """Resolve Ref (pseudo parameters, resources, parameters: overrides, else defaults;
    CommaDelimitedList as a list), GetAtt .Arn, Sub, Join, Select and Split against what
    `create` made."""
    overrides = parameters or {}

    def condition(name: str) -> bool:
        return bool(resolve(template.get("Conditions", {})[name]))

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and arg == "AWS::NoValue":
                return _NO_VALUE
            if key == "Fn::If":
                name, then, otherwise = arg
                return resolve(then if condition(name) else otherwise)
            if key == "Fn::Equals":
                return str(resolve(arg[0])) == str(resolve(arg[1]))
            if key == "Fn::Not":
                return not resolve(arg[0])
            if key == "Fn::And":
                return all(resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(resolve(a) for a in arg)
            if key == "Condition":
                return condition(arg)
            if key == "Ref":
                for known in (stack.pseudo, overrides, stack.refs):
                    if arg in known:
                        return known[arg]
                param = template.get("Parameters", {}).get(arg, {})
                default = str(param.get("Default", ""))
                if param.get("Type") == "CommaDelimitedList":
                    return [item.strip() for item in default.split(",") if item.strip()]
                return default
            if key == "Fn::GetAtt":
                name, attr = arg
                if attr == "Arn":
                    return stack.arns[name]
                raise ValueError(f"unsupported GetAtt {name}.{attr}")
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(resolve(item)) for item in resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return resolve(items)[int(resolve(index))]
            if key == "Fn::Split":
                separator, text = arg
                return str(resolve(text)).split(separator)
            if key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(
                    resolve({"Fn::GetAtt": m.group(1).split(".", 1)}) if "." in m.group(1)
                    else resolve({"Ref": m.group(1)})), text)
        if isinstance(value, dict):
            resolved = {k: resolve(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not _NO_VALUE}
        if isinstance(value, list):
            return [v for v in (resolve(v) for v in value) if v is not _NO_VALUE]
        return value

    return resolve


#: What `Ref: AWS::NoValue` resolves to: the enclosing item is dropped.
_NO_VALUE = object()


def create(template: dict[str, Any], session: Any, stack_name: str = "ostinato",
           region: str = "us-east-1", template_dir: Path | None = None) -> Stack:
    """Create the template's tables, queues and schedule groups through `session`'s clients."""
    resources: dict[str, Any] = template["Resources"]
    stack = Stack(code_root=template_dir or Path("."))
    pseudo = pseudo_parameters(stack_name, region)
    ddb = session.client("dynamodb", region_name=region)
    sqs = session.client("sqs", region_name=region)
    scheduler = session.client("scheduler", region_name=region)

    stack.pseudo = pseudo
    resolve = resolver(template, stack)

    ordered = sorted(resources.items(), key=lambda kv: "RedrivePolicy" in json.dumps(
        kv[1].get("Properties", {}), default=str))
    for name, resource in ordered:
        props = resource.get("Properties", {})
        match resource["Type"]:
            case "AWS::DynamoDB::Table":
                table = f"{stack_name}-{name}"
                args: dict[str, Any] = {
                    "TableName": table, "AttributeDefinitions": props["AttributeDefinitions"],
                    "KeySchema": props["KeySchema"],
                    "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST")}
                if props.get("GlobalSecondaryIndexes"):
                    args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
                ddb.create_table(**args)
                stack.refs[name] = table
                stack.arns[name] = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}"
            case "AWS::SQS::Queue":
                fifo = bool(props.get("FifoQueue"))
                queue = f"{stack_name}-{name}" + (".fifo" if fifo else "")
                attrs = {}
                for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds"):
                    if key in props:
                        attrs[key] = str(props[key])
                if fifo:
                    attrs["FifoQueue"] = "true"
                    attrs["ContentBasedDeduplication"] = str(
                        bool(props.get("ContentBasedDeduplication"))).lower()
                if "RedrivePolicy" in props:
                    attrs["RedrivePolicy"] = json.dumps(resolve(props["RedrivePolicy"]))
                url = sqs.create_queue(QueueName=queue, Attributes=attrs)["QueueUrl"]
                stack.refs[name] = url
                stack.arns[name] = f"arn:aws:sqs:{region}:{ACCOUNT}:{queue}"
                stack.queue_urls_by_arn[stack.arns[name]] = url
            case "AWS::Scheduler::ScheduleGroup":
                group = resolve(props.get("Name", f"{stack_name}-{name}"))
                scheduler.create_schedule_group(Name=group)
                stack.refs[name] = group
                stack.arns[name] = f"arn:aws:scheduler:{region}:{ACCOUNT}:schedule-group/{group}"
                stack.schedule_groups.append(group)
            case "AWS::S3::Bucket":
                bucket = f"{stack_name}-{name}".lower()
                s3 = session.client("s3", region_name=region)
                s3.create_bucket(Bucket=bucket, **({} if region == "us-east-1" else {
                    "CreateBucketConfiguration": {"LocationConstraint": region}}))
                stack.refs[name] = bucket
                stack.arns[name] = f"arn:aws:s3:::{bucket}"
            case "AWS::IAM::Role":
                stack.refs[name] = f"{stack_name}-{name}"
                stack.arns[name] = f"arn:aws:iam::{ACCOUNT}:role/{stack_name}-{name}"
    globals_env = (template.get("Globals", {}).get("Function", {})
                   .get("Environment", {}).get("Variables", {}))
    stack.environment = {k: str(resolve(v)) for k, v in globals_env.items()}
    function_globals = template.get("Globals", {}).get("Function", {})
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        timeout = float(props.get("Timeout", function_globals.get("Timeout", 3)))
        for event in props.get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            arn = resolve(event["Properties"]["Queue"])
            url = stack.queue_urls_by_arn[arn]
            scaling = event["Properties"].get("ScalingConfig", {})
            stack.queue_mappings.append(QueueMapping(
                name, props["Handler"], url, int(event["Properties"].get("BatchSize", 10)),
                url.endswith(".fifo"), timeout,
                int(resolve(scaling.get("MaximumConcurrency", 5)))))
    return stack
