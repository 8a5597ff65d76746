"""A small client of ostinato's HTTP API (stdlib only), for the CLI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

DEFAULT_API_URL = "http://127.0.0.1:8787"
#: API Gateway gives up on a request after 29 s; wait a little longer than that.
TIMEOUT = 35.0


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


def segment(value: str) -> str:
    """`value` as one URL path segment."""
    return quote(value, safe="")


class ApiClient:
    """`request(method, path, body, query)` -> the decoded JSON answer, or `ApiError`."""

    def __init__(self, base_url: str = DEFAULT_API_URL, timeout: float = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"cannot reach the ostinato API at {self.base_url}: {reason} "
                           "(is `ostinato dev` running? see --api-url)") from None
        return json.loads(payload) if payload else None


def _api_error(exc: urllib.error.HTTPError) -> ApiError:
    raw = exc.read()
    try:
        error = json.loads(raw)["error"]
        return ApiError(str(error["message"]), str(error["code"]), exc.code)
    except (ValueError, KeyError, TypeError):
        text = raw.decode(errors="replace").strip()[:200] or exc.reason
        return ApiError(str(text), "", exc.code)
