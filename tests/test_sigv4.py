"""The CLI signs its requests with SigV4 as API Gateway checks them (IAM authorisation).

A stdlib HTTP server on loopback stands in for API Gateway: it recomputes each request's
signature with botocore's signer from what it received (method, raw path, the query decoded
and canonically re-encoded, the signed headers, the body) under the test credentials, and
answers 403 when it differs. The CLI runs in-process through click's `CliRunner`.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qsl, unquote, urlsplit
from urllib.request import Request, urlopen

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from click.testing import CliRunner

from ostinato._aws.signing import SigV4Signer
from ostinato._cli.apiclient import ApiClient, ApiError, execute_api_region, wants_iam
from ostinato._cli.connection import Connection
from ostinato._cli.main import cli
from ostinato._local.http_api import decode_path

ACCESS_KEY = "AKIDOSTINATOTEST"
SECRET_KEY = "ostinato-test-secret-key"
TOKEN = "ostinato-test-session-token"
REGION = "us-east-2"
SCOPE = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})")


# ------------------------------------------------------------------------ a strict gateway
@dataclass
class Received:
    method: str
    raw_path: str
    path: str  # decoded
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    verdict: str  # "ok" or why it was refused


def verify(method: str, raw_target: str, headers: dict[str, str], body: bytes) -> str:
    """"ok", or why the request's SigV4 signature is not the one the test credentials make."""
    auth = headers.get("authorization")
    if auth is None:
        return "no Authorization header"
    match = SCOPE.fullmatch(auth)
    if not match:
        return f"malformed Authorization {auth!r}"
    key, day, region, service, signed, signature = match.groups()
    amz_date = headers.get("x-amz-date", "")
    if (key, region, service) != (ACCESS_KEY, REGION, "execute-api"):
        return f"credential scope {key}/{region}/{service}"
    if day != amz_date[:8]:
        return "scope date is not X-Amz-Date's"
    sent = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if abs(sent.timestamp() - time.time()) > 300:
        return "X-Amz-Date is more than five minutes off"
    names = signed.split(";")
    if not {"host", "x-amz-date", "x-amz-security-token"} <= set(names):
        return f"host, date or token left unsigned: {signed}"
    if headers.get("x-amz-security-token") != TOKEN:
        return "wrong session token"
    parts = urlsplit(raw_target)
    request = AWSRequest(
        method=method, url=f"http://{headers['host']}{parts.path}",
        # API Gateway decodes the query and encodes it again, canonically (RFC 3986)
        params=parse_qsl(parts.query, keep_blank_values=True),
        headers={name: headers[name] for name in names}, data=body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, TOKEN), "execute-api", REGION)
    expected = signer.signature(signer.string_to_sign(
        request, signer.canonical_request(request)), request)
    return "ok" if hmac.compare_digest(expected, signature) else "signature does not match"


class Gateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[Received] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def last(self) -> Received:
        return self.received[-1]


class _Handler(BaseHTTPRequestHandler):
    server: Gateway

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        parts = urlsplit(self.path)
        verdict = verify(self.command, self.path, headers, body)
        self.server.received.append(Received(
            self.command, parts.path, unquote(parts.path), parse_qsl(parts.query), headers,
            body, verdict))
        if verdict == "ok":
            status, answer = 200, {"workflow_id": "w", "run_id": "r", "workflows": [],
                                   "next_token": None, "result": "ok"}
        elif "authorization" not in headers:
            status, answer = 403, {"message": "Forbidden"}
        else:
            status, answer = 403, {"message": f"The request signature we calculated does not "
                                              f"match the signature you provided ({verdict})"}
        raw = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    server = Gateway()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test credentials in the environment; nothing from this machine's ~/.aws."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "OSTINATO_API_AUTH", "OSTINATO_API_URL", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_REGION", REGION)


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    answer: Any = field(default=None)


def ostinato(*args: str) -> Run:
    done = CliRunner().invoke(cli, list(args))
    if done.exception and not isinstance(done.exception, SystemExit):
        raise done.exception
    answer = json.loads(done.stdout) if done.exit_code == 0 and "--json" in args else None
    return Run(done.exit_code, done.stdout, done.stderr, answer)


# ------------------------------------------------------------------------ signed and accepted
def test_get_with_a_query_string_is_signed(gateway: Gateway):
    done = ostinato("workflow", "list", "--status", "RUNNING", "--type", "order type/ü+*~",
                    "--limit", "7", "--json", "--api-url", gateway.url, "--auth", "iam")
    assert done.exit_code == 0, done.stderr
    got = gateway.last()
    assert got.verdict == "ok"
    assert got.method == "GET" and got.path == "/workflows"
    assert sorted(got.query) == [("limit", "7"), ("status", "RUNNING"),
                                 ("workflow_type", "order type/ü+*~")]
    assert done.answer == {"workflows": [], "next_token": None}


def test_post_with_a_json_body_is_signed(gateway: Gateway):
    done = ostinato("workflow", "start", "order", "pen", '{"note": "ünïcode & spaces"}',
                    "--id", "order-1", "--json", "--api-url", gateway.url, "--auth", "iam")
    assert done.exit_code == 0, done.stderr
    got = gateway.last()
    assert got.verdict == "ok" and got.method == "POST" and got.path == "/workflows"
    assert json.loads(got.body) == {"workflow_type": "order", "id": "order-1",
                                    "id_conflict_policy": "fail",
                                    "args": ["pen", {"note": "ünïcode & spaces"}]}
    assert "x-amz-security-token" in got.headers["authorization"]


@pytest.mark.parametrize("workflow_id", ["id with space/slash?#%ü", "..", "a+b=c&d", "~é"])
def test_path_segments_needing_percent_encoding_are_signed(gateway: Gateway,
                                                           workflow_id: str):
    done = ostinato("workflow", "signal", workflow_id, "sig nål", '"x"', "--json",
                    "--api-url", gateway.url, "--auth", "iam")
    assert done.exit_code == 0, done.stderr
    got = gateway.last()
    assert got.verdict == "ok"
    raw = got.raw_path.split("/")
    assert raw[1] == "workflows" and raw[3] == "signals" and len(raw) == 5
    assert raw[2] not in (".", "..")  # a bare dot segment is removed by servers (RFC 3986)
    # what the route gets: API Gateway decodes the path twice (see ostinato._local.http_api)
    assert [decode_path("/" + raw[2])[1:], unquote(raw[4])] == [workflow_id, "sig nål"]


def test_auth_iam_from_the_environment_and_options_on_the_top_level_command(
        gateway: Gateway, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OSTINATO_API_AUTH", "iam")
    assert ostinato("workflow", "describe", "w-1", "--json",
                    "--api-url", gateway.url).exit_code == 0
    assert gateway.last().verdict == "ok"
    monkeypatch.delenv("OSTINATO_API_AUTH")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # --region beats the environment's
    assert ostinato("--auth", "iam", "--region", REGION, "workflow", "cancel", "w-1",
                    "--json", "--api-url", gateway.url).exit_code == 0
    assert gateway.last().verdict == "ok" and gateway.last().path == "/workflows/w-1/cancel"


def test_a_profile_from_the_shared_files_is_used(gateway: Gateway, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_REGION"):
        monkeypatch.delenv(name)
    (tmp_path / "credentials").write_text(
        f"[ops]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        f"aws_session_token = {TOKEN}\n")
    (tmp_path / "config").write_text(f"[profile ops]\nregion = {REGION}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    done = ostinato("workflow", "history", "w-1", "--json", "--api-url", gateway.url,
                    "--auth", "iam", "--profile", "ops")
    assert done.exit_code == 0, done.stderr
    assert gateway.last().verdict == "ok"
    missing = ostinato("workflow", "describe", "w-1", "--api-url", gateway.url,
                       "--auth", "iam", "--profile", "nobody")
    assert missing.exit_code == 1 and missing.stderr.startswith("error: ")
    assert "nobody" in missing.stderr and len(missing.stderr.splitlines()) == 1


# ------------------------------------------------------------------------ refused
def test_wrong_credentials_are_refused(gateway: Gateway, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    done = ostinato("workflow", "list", "--api-url", gateway.url, "--auth", "iam")
    assert gateway.last().verdict == "signature does not match"
    assert done.exit_code == 1 and "HTTP 403" in done.stderr
    assert len(done.stderr.splitlines()) == 1 and "signature" in done.stderr
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "stale-token")
    assert ostinato("workflow", "list", "--api-url", gateway.url, "--auth", "iam").exit_code == 1
    assert gateway.last().verdict == "wrong session token"


def _tampering(change: str):
    """A signer that signs one request and lets another be sent."""
    real = SigV4Signer(REGION)

    def sign(method: str, url: str, headers: dict[str, str], body: bytes | None):
        if change == "body":
            body = b'{"args": ["something else"]}'
        elif change == "query":
            url = url.replace("limit=5", "limit=6")
        elif change == "path":
            url = url.replace("/w-1/", "/w-2/")
        elif change == "method":
            method = "GET"
        return real(method, url, headers, body)

    return sign


@pytest.mark.parametrize("change", ["body", "query", "path", "method"])
def test_a_request_that_differs_from_what_was_signed_is_refused(gateway: Gateway, change: str):
    client = ApiClient(gateway.url, signer=_tampering(change))
    with pytest.raises(ApiError) as refused:
        client.request("POST", "/workflows/w-1/signals/go", {"args": ["x"]}, {"limit": 5})
    assert refused.value.status == 403
    assert gateway.last().verdict == "signature does not match"
    # the same request, signed as sent, passes: the refusal is about the change alone
    ApiClient(gateway.url, signer=SigV4Signer(REGION)).request(
        "POST", "/workflows/w-1/signals/go", {"args": ["x"]}, {"limit": 5})
    assert gateway.last().verdict == "ok"


def test_a_plus_for_a_space_would_not_verify(gateway: Gateway):
    """Why the query is encoded with %20: API Gateway canonicalises the decoded query, so a
    request signed over `+` (what `urlencode` writes by default) fails."""
    url = gateway.url + "/workflows?workflow_type=a+b"
    headers = SigV4Signer(REGION)("GET", url, {}, None)
    with pytest.raises(HTTPError) as refused:
        urlopen(Request(url, headers=headers), timeout=10)
    assert refused.value.code == 403


def test_auth_none_sends_no_authorization(gateway: Gateway):
    done = ostinato("workflow", "list", "--api-url", gateway.url, "--auth", "none")
    assert "authorization" not in gateway.last().headers
    assert not any(h.startswith("x-amz-") for h in gateway.last().headers)
    assert done.exit_code == 1 and "HTTP 403" in done.stderr and "--auth iam" in done.stderr
    # the default for a loopback URL is unsigned too
    ostinato("workflow", "list", "--api-url", gateway.url)
    assert "authorization" not in gateway.last().headers


def test_no_credentials_is_one_clear_line(gateway: Gateway, monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    done = ostinato("workflow", "list", "--api-url", gateway.url, "--auth", "iam")
    assert done.exit_code == 1 and done.stderr.startswith("error: no AWS credentials")
    assert len(done.stderr.splitlines()) == 1


# ------------------------------------------------------------------------ auto-detection
def test_execute_api_hosts_select_iam_and_their_region():
    url = "https://a1b2c3d4e5.execute-api.us-east-2.amazonaws.com"
    assert wants_iam(url, None) and wants_iam(url, "auto")
    assert execute_api_region(url) == "us-east-2"
    assert execute_api_region("https://x9.execute-api.cn-north-1.amazonaws.com.cn/") == \
        "cn-north-1"
    assert not wants_iam(url, "none")
    for other in ("http://127.0.0.1:8787", "https://api.example.com",
                  "https://a1.execute-api.us-east-2.amazonaws.com.evil.example"):
        assert not wants_iam(other, None) and execute_api_region(other) is None
        assert wants_iam(other, "iam")


def test_an_execute_api_host_signs_for_its_own_region(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    url = "https://a1b2c3d4e5.execute-api.us-east-2.amazonaws.com"
    signer = Connection().client(url).signer
    assert signer is not None
    headers = signer("GET", url + "/workflows", {}, None)
    assert "/us-east-2/execute-api/aws4_request" in headers["Authorization"]
    assert Connection(auth="none").client(url).signer is None
    explicit = Connection(region="ap-south-1").client(url).signer
    assert explicit is not None
    assert "/ap-south-1/" in explicit("GET", url, {}, None)["Authorization"]
