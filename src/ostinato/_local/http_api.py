"""API Gateway HTTP API emulation on loopback: HTTP request -> payload 2.0 event -> handler.

What API Gateway does that handlers can see is reproduced: the query string raw and parsed,
header names lower-case, binary bodies base64-encoded, request bodies over 10 MB refused, the
template's routes matched (`routeKey`, `pathParameters`), and the handler's `{"statusCode",
"headers", "body", "isBase64Encoded", "cookies"}` turned back into HTTP.

The path reaches the handler in `rawPath` percent-decoded the way live HTTP APIs decode it
(captured in 2026, github.com/hotsock/voker `vokerhttp/testdata/ingress-paths.json`): decoded
twice, so `%252F` arrives as `/` and `%2525` as `%`; a `%` the first decoding leaves that is
not an escape is refused with 400. Where AWS cuts the path at a `?` the first decoding
produced (`/w/a%3Fb` arrives as `/w/a`), the emulator refuses it with 400 instead: a request
that AWS would silently send to another resource fails loudly here. Clients send `%` and `?`
encoded twice (`%2525`, `%253F`), as the CLI's `segment()` does.

Requests no route takes are answered here, as API Gateway answers them before any Lambda
runs (in the API's error shape, as are the 400s above): 404 when no route has the path; when
routes have the path but not the method, 405 with an `Allow` header naming theirs (API Gateway
itself answers 404 `{"message": "Not Found"}` to both; HTTP says 405, and `ostinato dev`
follows HTTP there). Without routes (`routes=None`) every request goes to the handler.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .emulator import LambdaContext
from .template import ACCOUNT

logger = logging.getLogger("ostinato.dev")

#: API Gateway refuses larger request payloads before any Lambda runs.
MAX_REQUEST_BYTES = 10 * 1024 * 1024

Handler = Callable[[dict[str, Any], Any], Any]


class PathRefused(ValueError):
    """A request path API Gateway would refuse or cut (400)."""


def decode_path(raw: str) -> str:
    """`rawPath` as an HTTP API delivers it for the request path `raw` (see the docstring)."""
    once = unquote(raw)
    if "?" in once:
        raise PathRefused("the path holds a '?' once decoded, where API Gateway cuts it "
                          "(encode it twice: %253F)")
    if _BAD_ESCAPE.search(once):
        raise PathRefused("the path holds a '%' that is not an escape once decoded, which API "
                          "Gateway refuses (encode it twice: %2525)")
    return unquote(once) or "/"


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class Route:
    """One route of the HTTP API: `GET /workflows/{id}`, `ANY /{proxy+}` or `$default`."""

    method: str
    path: str

    @property
    def key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when `path` is one of this route's, else None."""
        if self.path == "$default":
            return {}
        wanted, parts = self.path[1:].split("/"), path[1:].split("/")
        found: dict[str, str] = {}
        for i, segment in enumerate(wanted):
            if segment.startswith("{") and segment.endswith("+}"):
                rest = "/".join(parts[i:])
                if not rest:
                    return None
                found[segment[1:-2]] = rest
                return found
            if i >= len(parts):
                return None
            if segment.startswith("{") and segment.endswith("}"):
                if not parts[i]:
                    return None
                found[segment[1:-1]] = parts[i]
            elif segment != parts[i]:
                return None
        return found if len(parts) == len(wanted) else None


def to_event(method: str, target: str, headers: dict[str, str], body: bytes,
             source_ip: str = "127.0.0.1", now: float | None = None,
             route: Route | None = None, path_parameters: dict[str, str] | None = None,
             ) -> dict[str, Any]:
    """The API Gateway HTTP API payload-2.0 event for one request (`PathRefused` if its path
    is one API Gateway refuses)."""
    now = time.time() if now is None else now
    url = urlsplit(target)
    path = decode_path(url.path)
    lowered = {k.lower(): v for k, v in headers.items()}
    query: dict[str, str] = {}
    for key, value in parse_qsl(url.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    try:
        text, encoded = body.decode(), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    host = lowered.get("host", "127.0.0.1")
    route_key = route.key if route is not None else "$default"
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": route_key, "rawPath": path,
        "rawQueryString": url.query, "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "local", "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {"method": method.upper(), "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": lowered.get("user-agent", "")},
            "requestId": uuid.uuid4().hex, "routeKey": route_key, "stage": "$default",
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000)},
        "isBase64Encoded": encoded,
    }
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if cookies := lowered.get("cookie"):
        event["cookies"] = [c.strip() for c in cookies.split(";") if c.strip()]
    if body:
        event["body"] = text
    return event


def from_response(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a handler's answer, as API Gateway would send them."""
    if not isinstance(response, dict) or "statusCode" not in response:
        body = json.dumps(response).encode()
        return 200, [("Content-Type", "application/json")], body
    headers = [(k, str(v)) for k, v in (response.get("headers") or {}).items()]
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers += [(name, str(v)) for v in values]
    headers += [("Set-Cookie", c) for c in response.get("cookies") or []]
    raw = response.get("body") or ""
    body = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode()
    return int(response["statusCode"]), headers, body


def _error(status: int, code: str, message: str, *headers: tuple[str, str]
           ) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return status, [("Content-Type", "application/json"), *headers], body


class LocalHttpApi:
    """A threaded HTTP server invoking `handler` as API Gateway invokes the `api` function.

    The handler runs as in one warm Lambda container: one request at a time (Powertools'
    resolver keeps per-request state in module globals). `on_request(method, path, status,
    seconds)` is called after each request.
    """

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 8787,
                 function_name: str = "ApiFunction",
                 on_request: Callable[[str, str, int, float], None] | None = None,
                 routes: Iterable[Route] | None = None) -> None:
        self.handler = handler
        self.routes = None if routes is None else list(routes)
        self.function_name = function_name
        self.on_request = on_request
        self._server = ThreadingHTTPServer((host, port), self._request_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._container = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="ostinato-http-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def invoke(self, method: str, target: str, headers: dict[str, str], body: bytes,
               source_ip: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answer one request (what API Gateway + Lambda do for it)."""
        if len(body) > MAX_REQUEST_BYTES:
            return _error(413, "payload_too_large",
                          f"request body is over API Gateway's {MAX_REQUEST_BYTES} bytes")
        try:
            path = decode_path(urlsplit(target).path)
        except PathRefused as exc:
            return _error(400, "malformed_path", str(exc))
        route, parameters = None, None
        if self.routes is not None:
            found = [(r, p) for r in self.routes if (p := r.match(path)) is not None]
            if not found:
                return _error(404, "route_not_found", f"no route for {method} {path}")
            takes = [(r, p) for r, p in found if r.method in ("ANY", method.upper())]
            if not takes:
                allowed = ", ".join(sorted({r.method for r, _ in found}))
                return _error(405, "method_not_allowed", f"{method} {path}: use {allowed}",
                              ("Allow", allowed))
            route, parameters = takes[0]
        event = to_event(method, target, headers, body, source_ip, route=route,
                         path_parameters=parameters)
        context = LambdaContext(self.function_name, aws_request_id=str(uuid.uuid4()))
        try:
            with self._container:
                answer = self.handler(event, context)
            return from_response(answer)
        except Exception:  # a crashed function is a 500 that tells nothing more, as on AWS
            logger.exception("%s crashed (request id %s)", self.function_name,
                             context.aws_request_id)
            return _error(500, "internal_error", "internal error; see the logs (request id "
                          f"{context.aws_request_id})")

    def _request_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Request(BaseHTTPRequestHandler):
            server_version = "ostinato-dev"

            def _serve(self) -> None:
                started = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BYTES:
                    status, headers, body = _error(
                        413, "payload_too_large",
                        f"request body is over API Gateway's {MAX_REQUEST_BYTES} bytes")
                    self.close_connection = True
                else:
                    raw = self.rfile.read(length) if length else b""
                    status, headers, body = api.invoke(self.command, self.path,
                                                       dict(self.headers.items()), raw,
                                                       self.client_address[0])
                self.send_response(status)
                for name, value in headers:
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                if api.on_request is not None:
                    api.on_request(self.command, self.path, status,
                                   time.monotonic() - started)

            def __getattr__(self, name: str) -> Any:
                # every method, TRACE or made-up ones too, goes to `_serve` (not a 501)
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per request comes from on_request instead

        return Request
