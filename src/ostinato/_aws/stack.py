"""A deployed stack's CloudFormation outputs: how a laptop finds the stack's pieces."""

from __future__ import annotations

from typing import Any

from .session import AwsConfigError, session


class StackNotFoundError(AwsConfigError):
    """No stack of that name in that region (or no permission to see it)."""


def stack_outputs(name: str, *, profile: str | None = None, region: str | None = None,
                  aws: Any = None) -> dict[str, str]:
    """`{OutputKey: OutputValue}` of stack `name` (DescribeStacks), read with the credentials
    of `profile` in `region`, or through the boto3 session `aws`."""
    from botocore.exceptions import BotoCoreError, ClientError

    aws = aws or session(profile, region)
    if not aws.region_name:
        raise AwsConfigError(f"no AWS region to find stack {name!r} in: give a region "
                             "(--region), set AWS_REGION, or give the profile a region")
    try:
        stacks = aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in error.get(
                "Message", ""):
            raise StackNotFoundError(f"no stack {name!r} in {aws.region_name}") from None
        raise AwsConfigError(f"cannot read stack {name!r}: {exc}") from None
    except BotoCoreError as exc:  # no credentials, an expired SSO token, no network
        raise AwsConfigError(f"cannot read stack {name!r}: {exc}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
