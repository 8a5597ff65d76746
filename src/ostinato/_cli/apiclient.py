"""A small client of ostinato's HTTP API (stdlib only), for the CLI.

A deployed API is IAM-authorised: the client is then given a SigV4 signer (`_aws.signing`),
which signs the request exactly as it is sent, so paths and query strings are encoded here
the way SigV4 canonicalises them (RFC 3986: `%20`, never `+`).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_API_URL = "http://127.0.0.1:8787"
#: API Gateway gives up on a request after 29 s; wait a little longer than that.
TIMEOUT = 35.0
#: --auth: "iam" signs with SigV4, "none" does not, "auto" signs for execute-api hosts only.
AUTH_MODES = ("auto", "iam", "none")
#: API Gateway's default endpoints: https://{api-id}.execute-api.{region}.amazonaws.com[.cn]
EXECUTE_API_HOST = re.compile(r"[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")


class ApiError(Exception):
    """A request failed: the API answered an error, or could not be reached."""

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        if self.status:
            return f"{self.message} ({self.code or 'error'}, HTTP {self.status})"
        return self.message


class Signer(Protocol):
    """Returns the headers to send for a request (an Authorization among them); raises
    `ApiError` when it cannot sign (no credentials)."""

    def __call__(self, method: str, url: str, headers: dict[str, str],
                 body: bytes | None) -> dict[str, str]: ...


def segment(value: str) -> str:
    """`value` as one URL path segment of the ostinato API (`.` and `..` too: sent bare,
    they would move up).

    API Gateway HTTP APIs decode the path twice and cut it at a `?` the first decoding
    produced, so `%` and `?` are encoded twice (`%2525`, `%253F`) and everything else once:
    the route then gets `value` itself (`ostinato dev` decodes the same way).
    """
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value.replace("%", "%25").replace("?", "%3F"), safe="")


def execute_api_region(url: str) -> str | None:
    """The region of an API Gateway default endpoint URL; None for any other host."""
    match = EXECUTE_API_HOST.fullmatch((urlsplit(url).hostname or "").lower())
    return match.group(1) if match else None


def wants_iam(url: str, auth: str | None) -> bool:
    """Whether requests to `url` are signed: `auth` "iam"/"none", else (auto) execute-api."""
    if auth not in (None, *AUTH_MODES):
        raise ValueError(f"auth must be one of {AUTH_MODES}, not {auth!r}")
    if auth in ("iam", "none"):
        return auth == "iam"
    return execute_api_region(url) is not None


class ApiClient:
    """`request(method, path, body, query)` -> the decoded JSON answer, or `ApiError`."""

    def __init__(self, base_url: str = DEFAULT_API_URL, timeout: float = TIMEOUT,
                 signer: Signer | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.signer = signer

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urlencode(params, quote_via=quote, safe="")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.signer is not None:
            headers = self.signer(method, url, headers, data)
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            error = _api_error(exc)
            if error.status == 403 and self.signer is None:
                error.message += " (an IAM-authorised API: sign the requests with --auth iam)"
            raise error from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"cannot reach the ostinato API at {self.base_url}: {reason} "
                           "(is `ostinato dev` running? see --api-url)") from None
        return json.loads(payload) if payload else None


def _api_error(exc: urllib.error.HTTPError) -> ApiError:
    raw = exc.read()
    try:
        answer = json.loads(raw)
        if isinstance(answer, dict) and isinstance(answer.get("message"), str):
            return ApiError(answer["message"], "", exc.code)  # API Gateway's own refusals
        error = answer["error"]
        return ApiError(str(error["message"]), str(error["code"]), exc.code)
    except (ValueError, KeyError, TypeError):
        text = raw.decode(errors="replace").strip()[:200] or exc.reason
        return ApiError(str(text), "", exc.code)
