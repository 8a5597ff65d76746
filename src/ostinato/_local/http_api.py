"""API Gateway HTTP API emulation on loopback: HTTP request -> payload 2.0 event -> handler.

What API Gateway does that handlers can see is reproduced: the path arrives URL-decoded in
`rawPath` (as HTTP APIs deliver it), the query string raw and parsed, header names lower-case,
binary bodies base64-encoded, request bodies over 10 MB refused, and the handler's
`{"statusCode", "headers", "body", "isBase64Encoded", "cookies"}` turned back into HTTP.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
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


def to_event(method: str, target: str, headers: dict[str, str], body: bytes,
             source_ip: str = "127.0.0.1", now: float | None = None) -> dict[str, Any]:
    """The API Gateway HTTP API payload-2.0 event for one request."""
    now = time.time() if now is None else now
    url = urlsplit(target)
    path = unquote(url.path) or "/"
    lowered = {k.lower(): v for k, v in headers.items()}
    query: dict[str, str] = {}
    for key, value in parse_qsl(url.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    try:
        text, encoded = body.decode(), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    host = lowered.get("host", "127.0.0.1")
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": "$default", "rawPath": path,
        "rawQueryString": url.query, "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "local", "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {"method": method.upper(), "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": lowered.get("user-agent", "")},
            "requestId": uuid.uuid4().hex, "routeKey": "$default", "stage": "$default",
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000)},
        "isBase64Encoded": encoded,
    }
    if query:
        event["queryStringParameters"] = query
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


def _error(status: int, code: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return status, [("Content-Type", "application/json")], body


class LocalHttpApi:
    """A threaded HTTP server invoking `handler` as API Gateway invokes the `api` function.

    The handler runs as in one warm Lambda container: one request at a time (Powertools'
    resolver keeps per-request state in module globals). `on_request(method, path, status,
    seconds)` is called after each request.
    """

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 8787,
                 function_name: str = "ApiFunction",
                 on_request: Callable[[str, str, int, float], None] | None = None) -> None:
        self.handler = handler
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
        event = to_event(method, target, headers, body, source_ip)
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

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per request comes from on_request instead

        return Request
