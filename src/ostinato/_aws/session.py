"""Credentials and region from the standard AWS chain, for code that runs off Lambda.

On Lambda every setting is in the environment; on a laptop the CLI and `Client.from_stack`
also read the shared config and credentials files (profiles, SSO) through a boto3 session.
boto3 is imported on first use only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .._core.errors import OstinatoError


class AwsConfigError(OstinatoError):
    """No such profile, no credentials, no region, or no such stack: said in one line."""


def env_region(env: Mapping[str, str] = os.environ) -> str | None:
    """AWS_REGION (what Lambda sets), else AWS_DEFAULT_REGION (what the AWS CLI reads)."""
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


def session(profile: str | None = None, region: str | None = None) -> Any:
    """A boto3 session for `profile` (None: AWS_PROFILE, else the default chain) in `region`
    (None: `env_region()`, else the profile's region; `region_name` may stay None)."""
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        made = boto3.Session(profile_name=profile or None, region_name=region or env_region())
        _ = made.region_name  # reads the config: a missing profile shows here, not later
    except BotoCoreError as exc:  # ProfileNotFound, a config file that does not parse
        raise AwsConfigError(str(exc)) from None
    return made


def configured_region(profile: str | None = None) -> str | None:
    """The region of the environment, else of `profile`'s (or the default) config."""
    region: str | None = session(profile).region_name
    return region
