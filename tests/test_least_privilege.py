"""Least privilege, proven: every function runs a full workload under exactly the IAM role SAM
generates for it, and every grant of those roles is used.

`template.yaml` is translated offline by the SAM translator (`test_template.to_cloudformation`).
Each function's generated role (its inline `Policies` and `ManagedPolicyArns`) and every other
role of the template (`SchedulerRole`) are created in moto's IAM, their intrinsics resolved
against the resources the test environment made (`_local.template.resolver`), and assumed
through moto's STS. A workload then runs with moto's IAM enforcement on
(`set_initial_no_auth_action_count(0)`), each AWS call signed with the credentials of whoever
makes it:

- each SQS event-source poller (receive, invoke the handler, delete) as its function's role:
  Lambda's event source mapping polls with the function's execution role;
- the HTTP API handler, called with API Gateway events for every route, as its function's role;
- Scheduler's deliveries (one-time timers, recurring firings) as the role schedules pass to it;
- the harness's own setup and inspection as an administrator (an IAM user).

moto (5.2.5) authenticates each request (signature; access key -> IAM user or assumed role)
and collects the caller's policies (inline and attached; AWS managed ones from its copy of
their documents), but it matches resources for SQS and IAM only and skips most conditions. So
the decision is `evaluate`'s, on the policies moto collected, for the IAM actions, resources
and condition keys that AWS's Service Authorization Reference gives each API call
(`authorizations`): DeleteMessageBatch needs sqs:DeleteMessage, a transaction needs each
item's action on its table, a Query of an index needs the index's ARN, CreateSchedule with a
role needs iam:PassRole on it, PutEvents is authorized per entry with events:source.

The workload runs twice: as it is, and with the app's payloads encrypted by
`ostinato.codecs.KmsEncryption` (PayloadKmsKeyArn set to a key made in moto), so the template's
conditional KMS grants are proven too; KMS authorizes on the key an alias points to.

A refused call stops the workload at once, naming the function, action and resource. And the
reverse: every (action, resource) an inline policy grants must have been used by an allowed
call, or the test names it as an extra grant; managed policies' grants are held to the same,
but for the few (logs, X-Ray, one SQS read) only Lambda itself uses (`MANAGED_UNEXERCISED`).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import json
import random
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

import ostinato
from ostinato import RetryPolicy, activity, workflow
from ostinato._core import history as h
from ostinato._core import keys, wire
from ostinato._engine import RetryLater
from ostinato._engine.ports import Head
from ostinato._local.emulator import LambdaContext, import_handler, parse_at
from ostinato._local.eventbus import local_parameters
from ostinato._local.template import ACCOUNT, resolver
from ostinato.codecs import KmsEncryption
from ostinato.testing import WorkflowEnvironment
from tests.test_template import as_list, resources_of, sam_source, to_cloudformation

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
SAMPLE_API_EVENT = json.loads((ROOT / "events" / "api_start_workflow.json").read_text())
HARNESS = "harness"
#: What the first invocation of each SQS function is told it has left (milliseconds): the
#: handlers' time guard hands such a batch back instead of running it.
LITTLE_TIME_LEFT = 1_000

#: Grants of AWS managed policies that only Lambda itself uses, never the handlers' code, so
#: no local run can exercise them. Everything else a role is granted must be used.
MANAGED_UNEXERCISED = {
    # AWSLambdaBasicExecutionRole (and the same three in AWSLambdaSQSQueueExecutionRole): the
    # Lambda runtime ships the function's stdout to CloudWatch Logs with the role's credentials.
    "logs:*": "Lambda's runtime writes the function's logs",
    # AWSXrayWriteOnlyAccess, attached for `Tracing: Active`: Lambda's X-Ray daemon sends the
    # invocations' segments and reads sampling rules.
    "xray:*": "Lambda's X-Ray daemon sends trace segments (Tracing: Active)",
    # AWSLambdaSQSQueueExecutionRole: the event source mapping reads the queue's attributes
    # when it is created and while it scales; the emulated poller only receives and deletes.
    "sqs:GetQueueAttributes": "Lambda's SQS event source mapping reads the queue's attributes",
}


@pytest.fixture(autouse=True)
def _on_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests authorise every botocore call against the template's roles: the moto
    backend, whatever the default."""
    monkeypatch.setenv("OSTINATO_TEST_BACKEND", "moto")


# ------------------------------------------------------------------------------ the app
@activity(heartbeat_timeout=timedelta(minutes=5),
          retry=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3))
def flaky(who: str) -> dict:
    """Fails its first attempt after a heartbeat; the retry resumes from those details."""
    ctx = ostinato.activity_context()
    if ctx.info.attempt == 1:
        ctx.heartbeat({"half_done_for": who})
        raise RuntimeError("transient failure")
    return {"resumed_from": ctx.heartbeat_details}


@activity(retry=RetryPolicy(initial_interval=timedelta(minutes=20), maximum_attempts=2))
def patient(who: str) -> str:
    """Fails once; its retry is 20 minutes later, beyond SQS delays (a Scheduler schedule)."""
    if ostinato.activity_context().info.attempt == 1:
        raise RuntimeError("not yet")
    return f"done for {who}"


@activity
def pack(order_id: str) -> str:
    return f"packed {order_id}"


@workflow
async def kid(ctx: ostinato.WorkflowContext, who: str) -> str:
    return f"kid of {who}"


@workflow
async def journey(ctx: ostinato.WorkflowContext, who: str) -> dict:
    """Activities with retries, short and long timers, a signal, an update, a callback, a
    child: everything that makes the functions call AWS."""
    signals: list[str] = []
    bumps: list[int] = []

    def bump(n: int) -> int:
        bumps.append(n)
        return sum(bumps)

    ctx.on_signal("go", signals.append)
    ctx.on_update("bump", bump)
    ctx.on_query("state", lambda: {"signals": signals, "bumps": bumps})
    first = await ctx.execute_activity(flaky, who)
    await ctx.sleep(90)  # SQS DelaySeconds
    await ctx.wait_condition(lambda: bool(signals), timeout=timedelta(days=2))  # cancelled
    approval = ctx.create_callback(timeout=timedelta(days=3))
    ctx.on_query("token", lambda: approval.token)
    approved = await approval
    await ctx.sleep(timedelta(hours=2))  # a Scheduler at() schedule
    second = await ctx.execute_activity(patient, who)
    child = await ctx.execute_child_workflow(kid, who, id=f"{ctx.info.workflow_id}-kid")
    return {"first": first, "approved": approved, "second": second, "child": child,
            "signals": signals, "bumps": bumps}


@workflow
async def waiter(ctx: ostinato.WorkflowContext) -> None:
    await ctx.wait_condition(lambda: False)


#: A payload over the 128 KiB threshold that does not compress: it goes to the payload bucket.
BIG = base64.b64encode(random.Random(7).randbytes(200_000)).decode()


@activity(retry=RetryPolicy(initial_interval=timedelta(minutes=20), maximum_attempts=2))
def mirror(value: str) -> str:
    """Fails once; its retry (a Scheduler schedule, 20 minutes out) carries the large
    arguments through the timer function."""
    if ostinato.activity_context().info.attempt == 1:
        raise RuntimeError("not yet")
    return value[::-1]


@workflow
async def bulky(ctx: ostinato.WorkflowContext, value: str) -> str:
    """Large arguments, activity arguments and result, and workflow result."""
    return await ctx.execute_activity(mirror, value)


@workflow
async def digest(ctx: ostinato.WorkflowContext, value: str) -> int:
    return len(value)


@workflow
async def report(ctx: ostinato.WorkflowContext, what: str) -> str:
    await asyncio.sleep(0)
    return f"report on {what}"


@workflow
async def fulfil(ctx: ostinato.WorkflowContext, order: dict) -> str:
    return await ctx.execute_activity(pack, order["id"])


#: what the app is made of (the plain app, and the same one with a KMS codec below)
PARTS: dict[str, Any] = dict(
    workflows=[journey, kid, waiter, report, fulfil, bulky, digest],
    activities=[flaky, patient, pack, mirror],
    triggers=[ostinato.EventTrigger(fulfil, source="shop", detail_type="OrderPlaced",
                                    id=lambda event: "order-" + event["detail"]["id"])])
APP = ostinato.App(**PARTS)


class _Uncached(KmsEncryption):
    """KmsEncryption keeping no data key: each function then makes its own KMS calls, as
    separate Lambda processes do (one process runs every function here, so a shared cache
    would hide all but the first caller's)."""

    def __init__(self, key_id: str) -> None:
        super().__init__(key_id, reuse_seconds=0.0)

    def _remember(self, encrypted: bytes, plain: bytes) -> None:
        pass


KMS_ALIAS = "alias/ostinato-least-privilege"
#: the same app, its payloads encrypted with a KMS key (template parameter PayloadKmsKeyArn)
KMS_APP = ostinato.App(**PARTS, codec=_Uncached(KMS_ALIAS))
#: alias -> key ARN: KMS authorizes a call naming an alias on the key it points to
KMS_KEYS: dict[str, str] = {}


# ------------------------------------------------------------------------------ authorization
@dataclass(frozen=True)
class Need:
    """One authorization an API call needs: an IAM action on a resource, with condition keys."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()


def _table(name: str, index: str | None = None) -> str:
    arn = name if name.startswith("arn:") else f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
    return f"{arn}/index/{index}" if index else arn


def _queue(url_or_name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url_or_name.rsplit('/', 1)[-1]}"


#: The permission each batch API is authorized by (Service Authorization Reference, Amazon SQS).
SQS_BATCHES = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
               "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}
#: TransactWriteItems / TransactGetItems: the action each item needs on its table.
TRANSACTION_ITEMS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def authorizations(service: str, operation: str, params: dict[str, Any]) -> list[Need]:
    """What AWS authorizes for `operation` of `service` (its signing name) with `params`."""
    if service == "sqs":
        queue = params.get("QueueUrl") or params.get("QueueName")
        return [Need(f"sqs:{SQS_BATCHES.get(operation, operation)}",
                     _queue(queue) if queue else "*")]
    if service == "dynamodb":
        if operation in ("TransactWriteItems", "TransactGetItems"):
            needs = []
            for item in params["TransactItems"]:
                ((kind, body),) = item.items()
                needs.append(Need(f"dynamodb:{TRANSACTION_ITEMS[kind]}",
                                  _table(body["TableName"])))
            return needs
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [Need(f"dynamodb:{operation}", _table(t)) for t in params["RequestItems"]]
        if "TableName" in params:
            return [Need(f"dynamodb:{operation}",
                         _table(params["TableName"], params.get("IndexName")))]
    if service == "scheduler":
        group = params.get("GroupName") or "default"
        if operation.endswith("ScheduleGroup"):
            return [Need(f"scheduler:{operation}", f"arn:aws:scheduler:{REGION}:{ACCOUNT}"
                                                   f":schedule-group/{params['Name']}")]
        if operation.endswith("Schedule"):
            needs = [Need(f"scheduler:{operation}",
                          f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{group}/"
                          f"{params['Name']}")]
            role = params.get("Target", {}).get("RoleArn")
            if role:  # handing Scheduler a role is passing it (Scheduler user guide, IAM)
                needs.append(Need("iam:PassRole", role,
                                  (("iam:PassedToService", "scheduler.amazonaws.com"),)))
            return needs
    if service == "s3" and "Bucket" in params:  # object actions on the object's ARN
        key = params.get("Key")
        return [Need(f"s3:{'ListBucket' if operation.startswith('ListObjects') else operation}",
                     f"arn:aws:s3:::{params['Bucket']}" + (f"/{key}" if key else ""))]
    if service == "kms" and "KeyId" in params:
        return [Need(f"kms:{operation}", KMS_KEYS.get(params["KeyId"], params["KeyId"]))]
    if service == "events" and operation == "PutEvents":
        needs = []
        for entry in params["Entries"]:
            bus = entry.get("EventBusName") or "default"
            if not bus.startswith("arn:"):
                bus = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}"
            needs.append(Need("events:PutEvents", bus, (
                ("events:source", entry.get("Source", "")),
                ("events:detail-type", entry.get("DetailType", "")))))
        return needs
    return [Need(f"{service}:{operation}", "*")]


def _like(pattern: str, value: str, case: bool = True) -> bool:
    """IAM's wildcard match: `*` any run of characters, `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


#: Condition operators (IAM JSON policy reference, "Condition operators"); a policy using any
#: other one makes `conditions_hold` raise, so a new kind of condition cannot pass unchecked.
OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda expected, value: expected == value,
    "StringEqualsIgnoreCase": lambda expected, value: expected.lower() == value.lower(),
    "StringLike": _like,
    "ArnEquals": _like,  # both ArnEquals and ArnLike take wildcards
    "ArnLike": _like,
    "Bool": lambda expected, value: expected.lower() == value.lower(),
}
NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
           "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}


def conditions_hold(condition: dict[str, Any] | None, context: dict[str, str]) -> bool:
    """A statement's Condition against a request's keys (a missing key fails a positive
    operator, passes a negated one or an ...IfExists one)."""
    for operator, tests in (condition or {}).items():
        base, if_exists = ((operator[:-len("IfExists")], True) if operator.endswith("IfExists")
                           else (operator, False))
        negated = base in NEGATED
        compare = OPERATORS.get(NEGATED.get(base, base))
        if compare is None:
            raise NotImplementedError(f"condition operator {operator} (teach evaluate it)")
        for key, expected in tests.items():
            value = context.get(key.lower())
            if value is None:
                if if_exists or negated:
                    continue
                return False
            matched = any(compare(str(e), value) for e in as_list(expected))
            if matched == negated:
                return False
    return True


def statement_applies(statement: dict[str, Any], need: Need) -> bool:
    if "Action" in statement:
        acts = any(_like(a, need.action, case=False) for a in as_list(statement["Action"]))
    else:
        acts = not any(_like(a, need.action, case=False)
                       for a in as_list(statement["NotAction"]))
    if "Resource" in statement:
        on = any(_like(r, need.resource) for r in as_list(statement["Resource"]))
    else:
        on = "NotResource" in statement and not any(
            _like(r, need.resource) for r in as_list(statement["NotResource"]))
    context = {k.lower(): v for k, v in need.context}
    return acts and on and conditions_hold(statement.get("Condition"), context)


def evaluate(documents: list[dict[str, Any]], need: Need) -> bool:
    """Identity-policy evaluation: an explicit Deny wins, else any Allow, else denied."""
    allowed = False
    for document in documents:
        for statement in as_list(document.get("Statement", [])):
            if statement_applies(statement, need):
                if statement["Effect"] == "Deny":
                    return False
                allowed = True
    return allowed


# ------------------------------------------------------------------------------ roles
@dataclass
class Role:
    """A role of the translated template, resolved against the local stack."""

    logical_id: str
    principal: str  # the function's logical id, or the role's own for a service's role
    name: str
    trust: dict[str, Any]
    inline: dict[str, dict[str, Any]]
    managed: list[str]

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:role/{self.name}"


def _unresolved(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        if any(k == "Ref" or k.startswith("Fn::") for k in node):
            yield node
        for value in node.values():
            yield from _unresolved(value)
    elif isinstance(node, list):
        for value in node:
            yield from _unresolved(value)


def roles_of(cfn: dict[str, Any], resolve: Callable[[Any], Any], stack: Any) -> dict[str, Role]:
    """Every AWS::IAM::Role of `cfn`, by principal (function logical id or role logical id)."""
    function_of = {}
    for name, function in resources_of(cfn, "AWS::Lambda::Function").items():
        ref = function["Properties"]["Role"]
        assert "Fn::GetAtt" in ref, f"{name}: a role from outside the template ({ref})"
        function_of[ref["Fn::GetAtt"][0]] = name
    roles = {}
    stack_name = stack.pseudo["AWS::StackName"]
    for logical_id, resource in resources_of(cfn, "AWS::IAM::Role").items():
        props = resolve(resource["Properties"])
        leftover = list(_unresolved(props))
        assert not leftover, f"{logical_id}: intrinsics the local resolver left: {leftover}"
        known = stack.arns.get(logical_id)  # roles the environment already named (SchedulerRole)
        role = Role(logical_id, function_of.get(logical_id, logical_id),
                    known.rsplit("/", 1)[-1] if known else f"{stack_name}-{logical_id}",
                    props["AssumeRolePolicyDocument"],
                    {p["PolicyName"]: p["PolicyDocument"] for p in props.get("Policies", [])},
                    list(props.get("ManagedPolicyArns", [])))
        roles[role.principal] = role
    return roles


def service_role(roles: dict[str, Role], service: str) -> Role:
    found = [r for r in roles.values() if any(
        service in as_list(st.get("Principal", {}).get("Service", []))
        for st in as_list(r.trust["Statement"]))]
    assert len(found) == 1, f"roles {service} may assume: {[r.logical_id for r in found]}"
    return found[0]


def revoke(cfn: dict[str, Any], function: str, action: str, resource: Any) -> None:
    """Take `action` on `resource` (as the template writes it) out of `function`'s role."""
    role_id = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    revoked = False
    for policy in cfn["Resources"][role_id]["Properties"]["Policies"]:
        kept = []
        for st in as_list(policy["PolicyDocument"]["Statement"]):
            if set(st) == {"Fn::If"}:  # a conditional grant (the payload key): its branch
                condition, granted, otherwise = st["Fn::If"]
                actions = as_list(granted["Action"])
                if action in actions and resource in as_list(granted["Resource"]):
                    revoked = True
                    granted = {**granted, "Action": [a for a in actions if a != action]}
                kept.append({"Fn::If": [condition, granted, otherwise]})
                continue
            actions, resources = as_list(st["Action"]), as_list(st["Resource"])
            if st["Effect"] != "Allow" or action not in actions or resource not in resources:
                kept.append(st)
                continue
            revoked = True
            others = [a for a in actions if a != action]
            rest = [r for r in resources if r != resource]
            if others:
                kept.append({**st, "Action": others})
            if rest:
                kept.append({**st, "Action": [action], "Resource": rest})
        policy["PolicyDocument"]["Statement"] = kept
    assert revoked, f"{function} is not granted {action} on {resource}"


# ------------------------------------------------------------------------------ the harness
@dataclass
class Use:
    """One authorization moto was asked for, as the caller moto authenticated."""

    principal: str  # who the harness signed as: a function, a service role, or HARNESS
    caller_arn: str  # who moto says called
    operation: str
    need: Need
    allowed: bool


@dataclass
class Call:
    principal: str
    operation: str
    needs: list[Need]
    uses: list[Use] = field(default_factory=list)


class AccessDeniedInWorkload(BaseException):
    """A call of the workload was refused.

    A BaseException on purpose: handlers catch Exception (partial batch failures, retries,
    redelivery), which would turn a refusal into a retry loop; this stops the run at the call.
    """

    def __init__(self, use: Use) -> None:
        self.use = use
        super().__init__(f"AccessDenied: {use.principal} may not {use.need.action} on "
                         f"{use.need.resource} (API {use.operation}, signed as "
                         f"{use.caller_arn}, condition keys {dict(use.need.context)})")


class Harness:
    """One run: the environment, the roles in moto, the signing, and what moto was asked."""

    def __init__(self, cfn: dict[str, Any], app: ostinato.App = APP) -> None:
        self.cfn = cfn
        self.app = app
        self.uses: list[Use] = []
        self.routes_called: set[str] = set()
        self.dead_letter_targets: set[str] = set()  # queues schedules name as their DLQ
        self.managed_documents: dict[str, dict[str, Any]] = {}
        self._acting = [HARNESS]  # a stack, not a contextvar: activities run in helper threads
        self._call: ContextVar[Call | None] = ContextVar("call", default=None)
        self._short: set[str] = set()  # request ids of invocations with little time left
        self._to_shorten: set[str] = set()  # functions whose next invocation gets little time
        self.credentials: dict[str, Any] = {}

    # -- who is calling
    @contextmanager
    def acting(self, principal: str) -> Iterator[None]:
        self._acting.append(principal)
        try:
            yield
        finally:
            self._acting.pop()

    def as_principal(self, principal: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self.acting(principal):
                return fn(*args, **kwargs)

        return run

    # -- the run
    def run(self, monkeypatch: pytest.MonkeyPatch,
            workload: Callable[[Harness], None]) -> None:
        from moto.core import set_initial_no_auth_action_count

        monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        with WorkflowEnvironment(self.app, template=ROOT / "template.yaml") as env:
            self.env = env
            source = sam_source()
            self.stack = env.stack
            parameters: dict[str, Any] = local_parameters(source, self.app)
            if isinstance(self.app.codec, KmsEncryption):
                parameters["PayloadKmsKeyArn"] = self._create_key(self.app.codec.key_id)
            resolve = resolver(self.cfn, env.stack, parameters)
            self.roles = roles_of(self.cfn, resolve, env.stack)
            self.scheduler_role = service_role(self.roles, "scheduler.amazonaws.com")
            self._create_identities()
            self._install(monkeypatch, source)
            set_initial_no_auth_action_count(0)(workload)(self)
            self.handler_errors = list(env.handler_errors)

    @staticmethod
    def _create_key(alias: str) -> str:
        """The payload key and its alias, made before enforcement starts: its ARN."""
        import boto3

        kms = boto3.client("kms", region_name=REGION)
        arn: str = kms.create_key(Description="payloads")["KeyMetadata"]["Arn"]
        kms.create_alias(AliasName=alias, TargetKeyId=arn)
        KMS_KEYS[alias] = arn
        return arn

    def _create_identities(self) -> None:
        """The roles, their credentials (as Lambda and Scheduler assume them) and an admin,
        made before enforcement starts (moto's trust checks know no service principals)."""
        import boto3
        from botocore.credentials import Credentials

        iam = boto3.client("iam", region_name=REGION)
        sts = boto3.client("sts", region_name=REGION)
        for role in self.roles.values():
            iam.create_role(RoleName=role.name, AssumeRolePolicyDocument=json.dumps(role.trust))
            for name, document in role.inline.items():
                # SAM writes no Version: IAM then reads the 2008-10-17 language, which differs
                # only in policy variables (none here); moto accepts 2012-10-17 only.
                assert "${aws:" not in json.dumps(document), document
                document = {"Version": "2012-10-17", **document}
                iam.put_role_policy(RoleName=role.name, PolicyName=name,
                                    PolicyDocument=json.dumps(document))
            for arn in role.managed:
                if arn not in self.managed_documents:
                    try:
                        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
                    except iam.exceptions.NoSuchEntityException:
                        raise AssertionError(
                            f"moto has no copy of {arn}: supply its documented statements "
                            "here (AWS Managed Policy Reference)") from None
                    self.managed_documents[arn] = iam.get_policy_version(
                        PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
                iam.attach_role_policy(RoleName=role.name, PolicyArn=arn)
            made = sts.assume_role(RoleArn=role.arn, RoleSessionName=role.principal)
            c = made["Credentials"]
            self.credentials[role.principal] = Credentials(
                c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
        iam.create_user(UserName="least-privilege-harness")
        iam.put_user_policy(UserName="least-privilege-harness", PolicyName="admin",
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                                {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="least-privilege-harness")["AccessKey"]
        self.credentials[HARNESS] = Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def _install(self, monkeypatch: pytest.MonkeyPatch, source: dict[str, Any]) -> None:
        from botocore.client import BaseClient
        from botocore.exceptions import ClientError
        from moto.core.exceptions import AccessDeniedError
        from moto.iam.access_control import IAMPolicy, IAMRequestBase

        harness = self
        sign_and_send = BaseClient._make_api_call

        def _make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            principal = harness._acting[-1]
            service = client.meta.service_model.signing_name
            call = Call(principal, operation, authorizations(service, operation, params))
            dlq = params.get("Target", {}).get("DeadLetterConfig", {}).get("Arn")
            if service == "scheduler" and dlq:
                harness.dead_letter_targets.add(dlq)
            signer = client._request_signer
            saved, signer._credentials = signer._credentials, harness.credentials[principal]
            token = harness._call.set(call)
            try:
                return sign_and_send(client, operation, params)
            except ClientError as exc:
                denied = [use for use in call.uses if not use.allowed]
                if denied:
                    raise AccessDeniedInWorkload(denied[0]) from exc
                raise
            finally:
                harness._call.reset(token)
                signer._credentials = saved

        def check_action_permitted(request: Any, resource: str) -> None:
            """moto authenticated the caller; decide on the policies it collects for it."""
            call = harness._call.get()
            operation = request._action.split(":", 1)[1]
            if call is None or call.operation != operation:  # not signed by the harness:
                call = Call("unattributed", operation, [Need(request._action, resource)])
            caller = request._access_key.arn
            documents = [IAMPolicy(p)._policy_json
                         for p in request._access_key.collect_policies()]
            for need in call.needs:
                use = Use(call.principal, caller, operation, need, evaluate(documents, need))
                call.uses.append(use)
                if call.principal != HARNESS:
                    harness.uses.append(use)
                if not use.allowed:
                    raise AccessDeniedError(user_arn=caller,
                                            action=f"{need.action} on resource: {need.resource}")

        verify_signature = IAMRequestBase.check_signature

        def check_signature(request: Any) -> None:
            """moto rebuilds a bodiless request with its query parameters as its body, so a
            signed GET or DELETE with a query string never matches: check it as it was sent."""
            if request._body:
                return verify_signature(request)
            saved, request._data = request._data, {}
            try:
                return verify_signature(request)
            finally:
                request._data = saved

        time_left = LambdaContext.get_remaining_time_in_millis

        def remaining(context: LambdaContext) -> int:
            if context.function_name in harness._to_shorten:
                harness._to_shorten.discard(context.function_name)
                harness._short.add(context.aws_request_id)
            if context.aws_request_id in harness._short:
                return LITTLE_TIME_LEFT
            return time_left(context)

        monkeypatch.setattr(BaseClient, "_make_api_call", _make_api_call)
        monkeypatch.setattr(IAMRequestBase, "check_action_permitted", check_action_permitted)
        monkeypatch.setattr(IAMRequestBase, "check_signature", check_signature)
        monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", remaining)
        env = self.env
        for poller in env.pollers:  # Lambda polls with the function's execution role
            poller.poll = self.as_principal(poller.mapping.function, poller.poll)
        env.step = self.as_principal(HARNESS, env.step)
        env.schedules.next_due = self.as_principal(HARNESS, env.schedules.next_due)
        env.schedules._send = self.as_principal(self.scheduler_role.principal,
                                                env.schedules._send)
        (self.api_function,) = [
            name for name, r in source["Resources"].items()
            if r["Type"] == "AWS::Serverless::Function"
            and any(e["Type"] == "HttpApi" for e in r["Properties"].get("Events", {}).values())]
        api = source["Resources"][self.api_function]["Properties"]
        self.routes = {f"{e['Properties']['Method'].upper()} {e['Properties']['Path']}"
                       for e in api["Events"].values() if e["Type"] == "HttpApi"}
        self.api_handler = import_handler(api["Handler"], env.stack.code_root)

    # -- helpers for the workload
    def shorten_next_invocations(self) -> None:
        """The next invocation of every SQS function is told it has little time left."""
        self._to_shorten = {p.mapping.function for p in self.env.pollers}

    def api(self, route: str, body: Any = None, query: dict[str, Any] | None = None,
            **path: str) -> tuple[int, Any]:
        """One API Gateway (HTTP API, payload 2.0) request of `route`, as the API function."""
        assert route in self.routes, f"{route} is not a route of the template"
        self.routes_called.add(route)
        method, template = route.split(" ", 1)
        raw_path = re.sub(r"\{(\w+)\}", lambda m: quote(path[m.group(1)], safe=""), template)
        event = copy.deepcopy(SAMPLE_API_EVENT)
        event["routeKey"] = event["requestContext"]["routeKey"] = route
        event["rawPath"] = event["requestContext"]["http"]["path"] = raw_path
        event["requestContext"]["http"]["method"] = method
        event["rawQueryString"] = urlencode(query or {})
        if query:
            event["queryStringParameters"] = {k: str(v) for k, v in query.items()}
        if path:
            event["pathParameters"] = dict(path)
        if body is None:
            event.pop("body")
            event["headers"].pop("content-length")
        else:
            text = json.dumps(body)
            event["body"] = base64.b64encode(text.encode()).decode()
            event["isBase64Encoded"] = True
            event["headers"]["content-length"] = str(len(text.encode()))
        context = LambdaContext(self.api_function, aws_request_id=str(uuid.uuid4()))
        with self.acting(self.api_function):
            answer = self.api_handler(event, context)
        return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None

    def deliver_early(self, before: float) -> None:
        """Scheduler delivers the next one-time schedule `before` seconds ahead of its time."""
        env = self.env
        group = env.stack.schedule_groups[0]
        found = [env.scheduler.get_schedule(Name=s["Name"], GroupName=group) for s in
                 env.scheduler.list_schedules(GroupName=group)["Schedules"]]
        once = sorted((parse_at(s["ScheduleExpression"]), s) for s in found
                      if parse_at(s["ScheduleExpression"]) is not None)
        assert once, "no one-time schedule to deliver early"
        due, schedule = once[0]
        assert due is not None
        env.sleep(max(0.0, due - before - env.clock()))
        target = schedule["Target"]
        with self.acting(self.scheduler_role.principal):
            env.sqs.send_message(QueueUrl=env.stack.queue_urls_by_arn[target["Arn"]],
                                 MessageBody=target["Input"])
        env.drain()


# ------------------------------------------------------------------------------ the workload
def expect(answer: tuple[int, Any], status: int) -> Any:
    assert answer[0] == status, answer
    return answer[1]


def full_workload(harness: Harness) -> None:
    env, api = harness.env, harness.api
    harness.shorten_next_invocations()  # each SQS function's first batch: almost no time left

    # start; an activity that heartbeats, fails and is retried; a 90 s timer
    expect(api("POST /workflows", {"workflow_type": "journey", "args": ["ann"],
                                   "id": "journey-1"}), 201)
    env.sleep(5 * 60)
    expect(api("POST /workflows/{id}/queries/{name}", id="journey-1", name="state"), 200)
    assert expect(api("POST /workflows/{id}/updates/{name}", {"args": [2]}, id="journey-1",
                      name="bump"), 200) == {"result": 2}
    assert expect(api("POST /workflows/{id}/update-with-start", {
        "workflow_type": "journey", "args": ["ann"], "update": "bump", "update_args": [3]},
        id="journey-1"), 200)["result"] == 5  # attached to the running run
    # the signal ends a 2-day wait early: its schedule is deleted; a callback is created
    expect(api("POST /workflows/{id}/signals/{name}", {"args": ["ann"]}, id="journey-1",
               name="go"), 202)
    env.drain()
    token = expect(api("POST /workflows/{id}/queries/{name}", id="journey-1",
                       name="token"), 200)["result"]
    expect(api("POST /callbacks/{token}", {"status": "success", "result": {"ok": True}},
               token=token), 202)
    env.drain()
    # the 2-hour timer is a schedule; Scheduler delivers it early twice (the timer function
    # schedules it again, then delays it on SQS), then on time
    harness.deliver_early(before=3600)
    harness.deliver_early(before=600)
    env.sleep(timedelta(hours=1))
    # the activity's retry in 20 minutes is a schedule too; then the child workflow
    env.sleep(timedelta(minutes=30))
    described = expect(api("GET /workflows/{id}", id="journey-1"), 200)
    assert described["status"] == "COMPLETED", described
    assert described["result"]["child"] == "kid of ann", described
    expect(api("GET /workflows/{id}/history", id="journey-1"), 200)

    # a start whose head is written after the decider first sees its wake-up (the client
    # sends the wake-up first): the decider defers the message
    rid = uuid.uuid4().hex
    env.runtime.transport.send_workflow_task(wire.Start("late-head", rid, keys.start(rid)))
    env.step()
    env.runtime.store.create_head(Head("late-head", rid, "kid", h.Status.RUNNING, env.clock(),
                                       ["late"]))
    env.sleep(10)
    assert expect(api("GET /workflows/{id}", id="late-head"), 200)["status"] == "COMPLETED"

    # large payloads go through the payload bucket: the API writes the arguments, the decider
    # reads them and writes history and the activity task, the activity worker reads the task,
    # writes its retry's schedule input and its result, the timer function reads that input
    # and forwards the task; the API reads them all back
    expect(api("POST /workflows", {"workflow_type": "bulky", "args": [BIG], "id": "bulky-1"}),
           201)
    env.sleep(timedelta(minutes=30))
    described = expect(api("GET /workflows/{id}", id="bulky-1"), 200)
    assert described["status"] == "COMPLETED" and described["result"] == BIG[::-1]
    events = expect(api("GET /workflows/{id}/history", id="bulky-1"), 200)["events"]
    assert events[0]["args"] == [BIG]

    # cancel and terminate
    for wid in ("waiter-cancel", "waiter-terminate"):
        expect(api("POST /workflows", {"workflow_type": "waiter", "id": wid}), 201)
    env.drain()
    expect(api("POST /workflows/{id}/cancel", {"reason": "no longer needed"},
               id="waiter-cancel"), 202)
    expect(api("POST /workflows/{id}/terminate", {"reason": "stop"},
               id="waiter-terminate"), 202)
    env.drain()
    assert expect(api("GET /workflows/{id}", id="waiter-cancel"), 200)["status"] == "CANCELLED"
    assert expect(api("GET /workflows/{id}", id="waiter-terminate"),
                  200)["status"] == "TERMINATED"

    # recurring schedules: one new, one over the Scheduler schedule a failed create left
    scheduler_role = harness.scheduler_role.arn
    env.scheduler.create_schedule(
        Name=keys.recurring_schedule("nightly"), GroupName=env.stack.schedule_groups[0],
        ScheduleExpression="cron(0 3 * * ? *)", FlexibleTimeWindow={"Mode": "OFF"},
        State="DISABLED", Target={"Arn": env.settings.trigger_queue_arn,
                                  "RoleArn": scheduler_role, "Input": "{}"})
    expect(api("POST /schedules", {"name": "hourly", "workflow_type": "report",
                                   "args": ["sales"], "rate": "1 hour"}), 201)
    expect(api("POST /schedules", {"name": "nightly", "workflow_type": "report",
                                   "args": ["stock"], "cron": "0 3 * * ? *"}), 201)
    # large arguments: the schedule's input is kept in the payload bucket, which the events
    # function reads at each firing and writes the started run's arguments to
    expect(api("POST /schedules", {"name": "bulky", "workflow_type": "digest", "args": [BIG],
                                   "rate": "1 hour"}), 201)
    assert len(expect(api("GET /schedules"), 200)["schedules"]) == 3
    env.sleep(timedelta(minutes=70))
    fired = expect(api("GET /workflows", query={"workflow_type": "report"}), 200)["workflows"]
    assert fired and all(w["status"] == "COMPLETED" for w in fired), fired
    digests = expect(api("GET /workflows", query={"workflow_type": "digest"}),
                     200)["workflows"]
    assert digests and all(w["result"] == len(BIG) for w in digests), digests
    for name in ("hourly", "nightly", "bulky"):
        expect(api("DELETE /schedules/{name}", name=name), 204)

    # event triggers, published through the API: two events in one batch of the events
    # function, which has almost no time left, so the second goes back to its queue untouched
    harness.shorten_next_invocations()
    answer = expect(api("POST /events", {"Entries": [
        {"Source": "shop", "DetailType": "OrderPlaced", "Detail": {"id": order}}
        for order in ("1001", "1002")]}), 200)
    assert answer["FailedEntryCount"] == 0, answer
    env.drain()
    for order in ("1001", "1002"):
        assert expect(api("GET /workflows/{id}", id=f"order-{order}"),
                      200)["status"] == "COMPLETED"

    # listing, the OpenAPI document
    expect(api("GET /workflows"), 200)
    expect(api("GET /workflows", query={"status": "COMPLETED"}), 200)
    expect(api("GET /openapi.json"), 200)


def first_decisions(harness: Harness) -> None:
    """Enough of the workload to reach a decider's write and an activity's report."""
    harness.shorten_next_invocations()
    expect(harness.api("POST /workflows", {"workflow_type": "journey", "args": ["bo"],
                                           "id": "journey-2"}), 201)
    harness.env.sleep(5 * 60)


# ------------------------------------------------------------------------------ the checks
def unexercised(harness: Harness) -> list[str]:
    """Every granted (action, resource) no allowed call of its principal used, with why not."""
    found = []
    for role in harness.roles.values():
        used = [u for u in harness.uses if u.principal == role.principal and u.allowed]
        grants: list[tuple[str, dict[str, Any], str]] = [
            (f"inline {name}", st, "") for name, doc in role.inline.items()
            for st in as_list(doc["Statement"])]
        grants += [(f"managed {arn.rsplit('/', 1)[-1]}", st, arn) for arn in role.managed
                   for st in as_list(harness.managed_documents[arn]["Statement"])]
        for where, st, managed in grants:
            assert st["Effect"] == "Allow" and "Action" in st and "Resource" in st, st
            for action in as_list(st["Action"]):
                for resource in as_list(st["Resource"]):
                    grant = {**st, "Action": action, "Resource": resource}
                    if any(statement_applies(grant, u.need) for u in used):
                        continue
                    if managed and any(_like(p, action, case=False)
                                       for p in MANAGED_UNEXERCISED):
                        continue
                    if (role is harness.scheduler_role and action == "sqs:SendMessage"
                            and resource in harness.dead_letter_targets):
                        continue  # Scheduler's DLQ: sent to only when a delivery fails
                    found.append(f"{role.principal}: {action} on {resource} "
                                 f"({where}, statement {st.get('Sid', '-')})")
    return found


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return to_cloudformation(sam_source())


@pytest.mark.parametrize("app", [APP, KMS_APP], ids=["plain", "kms-encrypted"])
def test_every_function_runs_the_workload_on_exactly_its_grants(
        cfn: dict[str, Any], app: ostinato.App, monkeypatch: pytest.MonkeyPatch) -> None:
    """With `kms-encrypted`, the app's codec is KmsEncryption and PayloadKmsKeyArn names its
    key: every function's KMS grants are used, and nothing more is needed."""
    harness = Harness(copy.deepcopy(cfn), app)
    harness.run(monkeypatch, full_workload)  # AccessDeniedInWorkload on the first refusal
    if app is KMS_APP:
        kms_users = {u.principal for u in harness.uses if u.need.action.startswith("kms:")}
        assert kms_users == {r.principal for r in harness.roles.values()
                             if r is not harness.scheduler_role}, kms_users

    # the one whole-batch failure expected: the decider deferring the wake-up of late-head
    failed = [exc for error in harness.handler_errors
              for (_, exc, _) in getattr(error, "child_exceptions", [(None, error, None)])]
    assert failed and all(isinstance(exc, RetryLater) for exc in failed), failed
    assert harness.routes_called == harness.routes, \
        f"routes the workload never called: {sorted(harness.routes - harness.routes_called)}"
    # the switching works: moto authenticated each principal as its own assumed role
    callers = {(u.principal, u.caller_arn.split("/")[1]) for u in harness.uses}
    assert callers == {(r.principal, r.name) for r in harness.roles.values()}, callers
    extra = unexercised(harness)
    assert not extra, "granted, never used (remove them, or say here why not):\n" + "\n".join(
        extra)
    # and that check can fail: a grant nothing used is named
    trigger_queue = harness.stack.arns["TriggerQueue"]
    harness.roles["TimerFunction"].inline["probe"] = {"Statement": [
        {"Sid": "Unused", "Effect": "Allow", "Action": "sqs:SendMessage",
         "Resource": trigger_queue}]}
    assert unexercised(harness) == [
        f"TimerFunction: sqs:SendMessage on {trigger_queue} (inline probe, statement Unused)"]


#: (function, action, resource: a logical id or the payload key parameter, app)
REVOCATIONS = {
    "decider writes history": ("WorkflowTaskFunction", "dynamodb:PutItem", "WorkflowTable",
                               APP),
    "activity reports": ("ActivityTaskFunction", "sqs:SendMessage", "WorkflowTaskQueue", APP),
    "api encrypts the start": ("ApiFunction", "kms:GenerateDataKey", "PayloadKmsKeyArn",
                               KMS_APP),
}


@pytest.mark.parametrize("revocation", list(REVOCATIONS))
def test_a_revoked_grant_stops_the_workload(cfn: dict[str, Any], revocation: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    function, action, resource, app = REVOCATIONS[revocation]
    mutated = copy.deepcopy(cfn)
    key = resource == "PayloadKmsKeyArn"
    revoke(mutated, function, action,
           {"Ref": resource} if key else {"Fn::GetAtt": [resource, "Arn"]})
    harness = Harness(mutated, app)
    with pytest.raises(AccessDeniedInWorkload) as refused:
        harness.run(monkeypatch, first_decisions)
    use = refused.value.use
    assert (use.principal, use.need.action, use.need.resource) == (
        function, action, KMS_KEYS[KMS_ALIAS] if key else harness.stack.arns[resource])
    assert f"assumed-role/{harness.roles[function].name}/" in use.caller_arn
