"""Schemathesis hooks for fuzzing `ostinato dev` (loaded through `schemathesis.toml`).

One hook: requests address path parameters the way the API documents it (each parameter's
description) and the CLI's `segment()` does it. API Gateway HTTP APIs decode the path twice
and cut it at a `?` the first decoding produced, which OpenAPI's path serialization cannot
say; schemathesis encodes each parameter once, so `%` and `?` get a second encoding here,
on the wire only (the case, and so every check, keeps the values as generated).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import schemathesis


class ApiGatewayPathEncoding(requests.auth.AuthBase):
    """Encodes the `%` and `?` of path parameters a second time (`%25` -> `%2525`, `%3F` ->
    `%253F`) as a requests auth hook, the one place that sees the final URL."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(str(request.url))
        path = url.path.replace("%25", "%2525").replace("%3F", "%253F").replace("%3f", "%253F")
        request.url = urlunsplit(url._replace(path=path))
        return request


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    kwargs["auth"] = ApiGatewayPathEncoding()
