"""Reaching a deployed stack from a laptop: `Client.from_stack`, `ostinato --stack`, and the
region a client takes when the environment names none.

The SAM template cannot be deployed on moto's CloudFormation, so the local stack is built from
template.yaml the way `ostinato dev` builds it, the template's Outputs are resolved against
it, and a plain CloudFormation stack carrying exactly those outputs is created on moto.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from ostinato._aws.session import AwsConfigError
from ostinato._aws.settings import OUTPUT_VARIABLES, Settings
from ostinato._aws.stack import StackNotFoundError
from ostinato._cli.main import cli
from ostinato._local import template as local_template
from ostinato._runtime import Client
from tests.test_sigv4 import ACCESS_KEY, REGION, SECRET_KEY, TOKEN, Gateway

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Test credentials; no region and nothing from this machine's ~/.aws."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "OSTINATO_API_AUTH", "OSTINATO_API_URL", *Settings(
                     "t", "w", "q").to_env()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    aws_env_credentials(monkeypatch)


def aws_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)


# ------------------------------------------------------------------------ outputs <-> settings
def test_every_output_from_outputs_reads_is_in_the_template_with_the_functions_value():
    """The two cannot drift: each output `Settings.from_outputs` reads is published by
    template.yaml with the very expression the functions' environment variable has."""
    template = local_template.load_template(TEMPLATE)
    outputs = template["Outputs"]
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    missing = sorted(set(OUTPUT_VARIABLES) - set(outputs))
    assert not missing, f"template.yaml lacks the outputs {missing}"
    for output, variable in OUTPUT_VARIABLES.items():
        expected = {"Ref": "AWS::Region"} if variable == "AWS_REGION" else env[variable]
        assert outputs[output]["Value"] == expected, f"{output} is not {variable}'s value"
    assert "ApiUrl" in outputs


def test_from_outputs_reads_every_field_of_settings():
    """Every field set to a value unlike its default survives outputs -> Settings, so a new
    field of Settings without an output fails here."""
    sample: dict[str, Any] = {}
    for f in fields(Settings):
        sample[f.name] = ({"default": "https://q/default", "gpu": "https://q/gpu"}
                          if f.name == "activity_queue_urls" else f"{f.name}-of-the-stack")
    settings = Settings(**sample)
    published = {**settings.to_env(), "AWS_REGION": settings.region}
    assert set(published) == set(OUTPUT_VARIABLES.values())
    outputs = {output: published[var] for output, var in OUTPUT_VARIABLES.items()}
    assert Settings.from_outputs({**outputs, "ApiUrl": "https://x"}) == settings
    del outputs["TimerQueueArn"]
    with pytest.raises(ValueError, match="TimerQueueArn"):
        Settings.from_outputs(outputs)


# ------------------------------------------------------------------------ from_stack on moto
@pytest.fixture
def deployed() -> Iterator[Settings]:
    """A stack `shop` in us-east-2 with template.yaml's outputs; the settings its functions
    would have."""
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        template = local_template.load_template(TEMPLATE)
        stack = local_template.create(template, session, stack_name="shop", region=REGION)
        resolve = local_template.resolver(template, stack)
        outputs = {name: str(resolve(o["Value"])) for name, o in template["Outputs"].items()}
        create_stack(session, "shop", outputs)
        yield Settings.from_mapping({**stack.environment, "AWS_REGION": REGION})


def create_stack(session: Any, name: str, outputs: dict[str, str]) -> None:
    body = {"Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()}}
    session.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(body))


def test_from_stack_builds_a_client_of_the_deployed_stack(deployed):
    functions_settings = deployed
    client = Client.from_stack("shop", region=REGION)
    assert client.settings == functions_settings
    # the settings name the real resources: a start lands in the table and on the queue
    handle = client.start_workflow("order", "pen", id="from-stack-1")
    assert handle.describe().status == "RUNNING"
    sqs = boto3.client("sqs", region_name=REGION)
    got = sqs.receive_message(QueueUrl=functions_settings.workflow_queue_url)
    assert "from-stack-1" in got["Messages"][0]["Body"]


def test_from_stack_takes_the_region_from_the_environment_or_profile(
        deployed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    assert Client.from_stack("shop").settings.region == REGION
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    (tmp_path / "config").write_text(f"[profile ops]\nregion = {REGION}\n")
    (tmp_path / "credentials").write_text(
        f"[ops]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    assert Client.from_stack("shop", profile="ops").settings.region == REGION


def test_from_stack_says_what_is_missing(deployed):
    with pytest.raises(StackNotFoundError, match="no stack 'nope' in us-east-2"):
        Client.from_stack("nope", region=REGION)
    with pytest.raises(AwsConfigError, match="no AWS region"):
        Client.from_stack("shop")
    create_stack(boto3.Session(region_name=REGION), "other", {"Something": "else"})
    with pytest.raises(ValueError, match=r"no output .*WorkflowTableName"):
        Client.from_stack("other", region=REGION)


# ------------------------------------------------------------------------ ostinato --stack
@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    server = Gateway()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_cli_stack_calls_the_stacks_api_url(gateway: Gateway, monkeypatch: pytest.MonkeyPatch):
    with mock_aws():
        aws_env_credentials(monkeypatch)  # mock_aws sets its own fake ones
        session = boto3.Session(region_name=REGION)
        create_stack(session, "shop", {"ApiUrl": gateway.url + "/"})
        runner = CliRunner()
        done = runner.invoke(cli, ["workflow", "list", "--json", "--stack", "shop",
                                   "--region", REGION, "--auth", "iam"])
        assert done.exit_code == 0, done.output
        assert gateway.last().path == "/workflows" and gateway.last().verdict == "ok"
        top = runner.invoke(cli, ["--stack", "shop", "--region", REGION, "--auth", "iam",
                                  "workflow", "describe", "w-9", "--json"])
        assert top.exit_code == 0, top.output
        assert gateway.last().path == "/workflows/w-9"

        both = runner.invoke(cli, ["workflow", "list", "--stack", "shop", "--region", REGION,
                                   "--api-url", gateway.url])
        assert both.exit_code == 2 and "not both" in both.stderr
        unknown = runner.invoke(cli, ["workflow", "list", "--stack", "nope",
                                      "--region", REGION])
        assert unknown.exit_code == 1
        assert unknown.stderr == "error: no stack 'nope' in us-east-2\n"
        create_stack(session, "bare", {})
        bare = runner.invoke(cli, ["workflow", "list", "--stack", "bare", "--region", REGION])
        assert bare.exit_code == 1 and "has no ApiUrl output" in bare.stderr


# ------------------------------------------------------------------------ from_env's region
def test_from_env_without_a_region_variable_takes_the_profiles(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for name, value in Settings("table", "https://wq", "https://tq").to_env().items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "config"
    config.write_text("[default]\nregion = ap-southeast-2\n\n[profile ops]\nregion = eu-north-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    assert Settings.from_env().region == "ap-southeast-2"
    assert Client.from_env().settings.region == "ap-southeast-2"
    monkeypatch.setenv("AWS_PROFILE", "ops")
    assert Settings.from_env().region == "eu-north-1"
    monkeypatch.setenv("AWS_REGION", "sa-east-1")  # the environment still wins (Lambda's)
    assert Settings.from_env().region == "sa-east-1"
    monkeypatch.delenv("AWS_REGION")
    config.write_text("")
    with pytest.raises(AwsConfigError, match="ops"):  # AWS_PROFILE names no profile
        Settings.from_env()
    monkeypatch.delenv("AWS_PROFILE")
    assert Settings.from_env().region == "us-east-1"  # nothing anywhere: as before
