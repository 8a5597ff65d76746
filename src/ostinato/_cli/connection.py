"""Which API the CLI talks to and how it signs: `--api-url`, `--stack`, `--auth`, `--profile`,
`--region`, accepted on the top-level command and on every API command (the latter wins).

`--stack NAME` reads the deployed stack's `ApiUrl` output. Requests are signed with SigV4 for
`--auth iam` (or OSTINATO_API_AUTH=iam), and by default for `*.execute-api.*.amazonaws.com`
hosts, whose region the host name gives. boto3 is imported only to sign or find a stack.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import click
from click.core import ParameterSource

from .apiclient import AUTH_MODES, ApiClient, ApiError, execute_api_region, wants_iam


class CliError(click.ClickException):
    """One line on stderr, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


@dataclass(frozen=True)
class Connection:
    """The connection options given so far (None: not given)."""

    stack: str | None = None
    auth: str | None = None
    profile: str | None = None
    region: str | None = None
    _clients: dict[str, ApiClient] = field(default_factory=dict, compare=False, repr=False)

    def merged(self, **given: str | None) -> Connection:
        """These options, overridden by those `given` (not None)."""
        chosen = {f.name: given.get(f.name) or getattr(self, f.name)
                  for f in fields(self) if not f.name.startswith("_")}
        return replace(self, **chosen, _clients={})

    def api_url(self, api_url: str, explicit: bool) -> str:
        """`--stack`'s ApiUrl output, else `api_url` (`explicit`: given on the command line)."""
        if self.stack is None:
            return api_url
        if explicit:
            raise click.UsageError("give --stack or --api-url, not both")
        from .._aws.session import AwsConfigError
        from .._aws.stack import stack_outputs

        try:
            outputs = stack_outputs(self.stack, profile=self.profile, region=self.region)
        except AwsConfigError as exc:
            raise CliError(str(exc)) from None
        if "ApiUrl" not in outputs:
            raise CliError(f"stack {self.stack!r} has no ApiUrl output: is it an "
                                       "ostinato stack (template.yaml)?")
        return outputs["ApiUrl"]

    def client(self, api_url: str) -> ApiClient:
        """One client per URL, signing when `wants_iam(api_url, auth)`."""
        if api_url not in self._clients:
            signer = self._signer(api_url) if wants_iam(api_url, self.auth) else None
            self._clients[api_url] = ApiClient(api_url, signer=signer)
        return self._clients[api_url]

    def _signer(self, api_url: str) -> Callable[..., dict[str, str]]:
        from .._aws.session import AwsConfigError
        from .._aws.signing import SigV4Signer

        try:  # an explicit --region wins; an execute-api host names the only one that works
            signer = SigV4Signer(self.region or execute_api_region(api_url), self.profile)
        except AwsConfigError as exc:
            raise CliError(str(exc)) from None

        def sign(method: str, url: str, headers: dict[str, str],
                 body: bytes | None) -> dict[str, str]:
            try:
                return signer(method, url, headers, body)
            except AwsConfigError as exc:
                raise ApiError(str(exc)) from None

        return sign


def options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`--stack`, `--auth`, `--profile`, `--region`, passed to `fn` as keyword arguments."""
    for option in reversed((
        click.option("--stack", metavar="NAME",
                     help="Call the API of this deployed CloudFormation stack (its ApiUrl "
                          "output)."),
        click.option("--auth", type=click.Choice(AUTH_MODES), envvar="OSTINATO_API_AUTH",
                     help="iam: sign requests with SigV4 (execute-api); none: do not; auto "
                          "(default): iam for *.execute-api.*.amazonaws.com hosts. Env "
                          "OSTINATO_API_AUTH."),
        click.option("--profile", metavar="NAME",
                     help="AWS profile for credentials and region (default: AWS_PROFILE, "
                          "else the default chain: env, shared files, SSO)."),
        click.option("--region", metavar="REGION",
                     help="AWS region to sign for and find --stack in (default: AWS_REGION, "
                          "AWS_DEFAULT_REGION, the profile's; an execute-api host's own)."),
    )):
        fn = option(fn)
    return fn


def group_options(fn: Callable[..., None]) -> Callable[..., None]:
    """The options on the top-level command: kept in the context for the API commands."""

    @options
    @functools.wraps(fn)
    def group(*args: Any, stack: str | None, auth: str | None, profile: str | None,
              region: str | None, **kwargs: Any) -> None:
        ctx = click.get_current_context()
        ctx.obj = Connection(stack, auth, profile, region)
        fn(*args, **kwargs)

    return group


def command_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options on an API command: merged over the top-level ones; `api_url` resolved."""

    @options
    @functools.wraps(fn)
    def command(*args: Any, stack: str | None, auth: str | None, profile: str | None,
                region: str | None, api_url: str, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        outer = ctx.find_object(Connection) or Connection()
        # a flag here beats the top-level one; an environment variable does not
        given = {name: value for name, value in (("stack", stack), ("auth", auth),
                                                 ("profile", profile), ("region", region))
                 if getattr(outer, name) is None
                 or ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
        ctx.obj = connection = outer.merged(**given)
        explicit = ctx.get_parameter_source("api_url") is ParameterSource.COMMANDLINE
        return fn(*args, api_url=connection.api_url(api_url, explicit), **kwargs)

    return command


def client(api_url: str) -> ApiClient:
    """The API client of the running command (plain, outside one)."""
    ctx = click.get_current_context(silent=True)
    connection = (ctx.find_object(Connection) if ctx else None) or Connection()
    return connection.client(api_url)
