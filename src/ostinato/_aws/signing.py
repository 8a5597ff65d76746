"""SigV4 for the HTTP API: API Gateway checks IAM authorisation on service `execute-api`.

The signature covers the method, the path and query exactly as sent (percent-encoded: botocore
encodes the path once more for the canonical request, as API Gateway does), the signed
headers and the body's SHA-256, so the caller must send exactly what it had signed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .session import AwsConfigError, session

SERVICE = "execute-api"


class SigV4Signer:
    """`signer(method, url, headers, body)` -> the headers to send, Authorization included.

    Credentials come from the standard chain of `profile` (environment, shared files, SSO,
    assumed roles) and are re-read before each request, so expiring ones get refreshed.
    """

    def __init__(self, region: str | None = None, profile: str | None = None) -> None:
        self._session = session(profile, region)
        self.region: str = self._session.region_name or ""
        if not self.region:
            raise AwsConfigError("no AWS region to sign requests for: give --region, set "
                                 "AWS_REGION, or give the profile a region")
        self._credentials = self._session.get_credentials()
        if self._credentials is None:
            raise AwsConfigError("no AWS credentials to sign requests with: give --profile, "
                                 "set AWS_PROFILE or AWS_ACCESS_KEY_ID, or run `aws sso login`")

    def __call__(self, method: str, url: str, headers: dict[str, str],
                 body: bytes | None) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import BotoCoreError

        try:
            frozen: Any = self._credentials.get_frozen_credentials()
        except BotoCoreError as exc:  # an expired SSO token, a role that cannot be assumed
            raise AwsConfigError(f"cannot get AWS credentials: {exc}") from None
        # Host as the HTTP client will send it (with any port), so the two cannot differ.
        request = AWSRequest(method=method, url=url, data=body,
                             headers={**headers, "Host": urlsplit(url).netloc})
        SigV4Auth(frozen, SERVICE, self.region).add_auth(request)
        return dict(request.headers.items())
