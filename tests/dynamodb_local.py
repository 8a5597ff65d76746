"""Fixtures for tests that must hold on real DynamoDB semantics, not only on moto's.

Two backends:

- `moto_locked`: in-process `moto.mock_aws` with `ostinato._local.motoserver.serialize_dispatch()`
  installed, i.e. moto made atomic by one global lock around request dispatch (what
  `ostinato dev` and `ostinato.testing` run on).
- `dynamodb_local_url` (session): the official engine, DynamoDB Local. Uses
  `$OSTINATO_DYNAMODB_LOCAL_URL` when set (CI starts the server with
  `scripts/dynamodb_local.sh start PORT` and exports it); otherwise starts a server of its own
  through that script on a free port if the jar is installed (`scripts/dynamodb_local.sh
  install`), and stops it at the end of the session (~3 s). Unavailable: the tests skip, or
  fail when `$CI` is set.

`backend` is parametrised over both, and over the in-memory store (`MemoryStore`, which must
win and lose the same races); the DynamoDB Local case carries the `dynamodb_local` mark.
`backend.new_store()` creates a fresh table from template.yaml's `WorkflowTable` and returns
an `ostinato._aws.store.Store` on it (the memory case: a fresh `MemoryStore`).

Import explicitly in a test module (this is not a conftest). pytest finds fixtures among the
module's names, so import every fixture `backend` reaches; each is defined as `<name>_fixture`
with `name="<name>"`, so a test's `backend` argument does not shadow the import (ruff F811):
`from tests.dynamodb_local import backend_fixture, dynamodb_local_fixture,
dynamodb_local_url_fixture, moto_locked_fixture  # noqa: F401`.

Endpoint care: pynamodb caches a model class per (table name, region) and creates its client
lazily, reading `AWS_ENDPOINT_URL_DYNAMODB` at that moment. Every store here gets a fresh,
uniquely named table, created after the environment for its backend is in place.
"""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from ostinato._aws.store import Store
from ostinato._local.template import load_template

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "dynamodb_local.sh"
TEMPLATE = ROOT / "template.yaml"
URL_ENV = "OSTINATO_DYNAMODB_LOCAL_URL"
REGION = "us-east-1"
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB")


def table_spec(template_path: Path = TEMPLATE, resource: str = "WorkflowTable") -> dict[str, Any]:
    """CreateTable arguments (without the name) from the template's table resource."""
    props = load_template(template_path)["Resources"][resource]["Properties"]
    spec: dict[str, Any] = {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        spec["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return spec


def create_table(name: str, endpoint_url: str | None = None) -> None:
    """Create the workflow table `name` and wait until it is ACTIVE."""
    client = _boto_client(endpoint_url)
    client.create_table(TableName=name, **table_spec())
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})


def _boto_client(endpoint_url: str | None) -> Any:
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint_url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where DynamoDB Local must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"DynamoDB Local unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"DynamoDB Local unavailable: {reason}")


def answers(url: str, timeout: float = 2.0) -> bool:
    """True if an HTTP server answers at `url` (DynamoDB Local answers a bare GET with 400)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _script(*args: str, state: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if state is not None:
        env["DYNAMODB_LOCAL_STATE"] = str(state)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


@pytest.fixture(scope="session", name="dynamodb_local_url")
def dynamodb_local_url_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of a running DynamoDB Local (see the module docstring)."""
    url = os.environ.get(URL_ENV, "").strip().rstrip("/")
    if url:
        if not answers(url):
            _unavailable(f"${URL_ENV}={url} does not answer")
        yield url
        return
    if not SCRIPT.exists() or _script("jar").returncode != 0:
        _unavailable(f"not installed (run `bash scripts/dynamodb_local.sh install`) "
                     f"and ${URL_ENV} not set")
    # A server of this session's own (pid file in a private directory): a server someone else
    # started could be stopped under us by its owner.
    state = tmp_path_factory.mktemp("dynamodb-local")
    started = _script("start", str(_free_port()), state=state)
    if started.returncode != 0:
        _unavailable(f"scripts/dynamodb_local.sh start failed: {started.stderr.strip()}")
    try:
        yield started.stdout.strip()
    finally:
        _script("stop", state=state)


def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture(name="moto_locked")
def moto_locked_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process moto with the global dispatch lock, for the duration of one test."""
    from moto import mock_aws

    from ostinato._local.motoserver import serialize_dispatch

    for var in _ENDPOINT_VARS:
        monkeypatch.delenv(var, raising=False)
    _fake_credentials(monkeypatch)
    serialize_dispatch()
    with mock_aws():
        yield


@pytest.fixture(name="dynamodb_local")
def dynamodb_local_fixture(dynamodb_local_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 and pynamodb at DynamoDB Local for one test; returns the URL."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local_url)
    _fake_credentials(monkeypatch)
    return dynamodb_local_url


@dataclass
class Backend:
    """One DynamoDB backend for a test; `new_store()` gives a Store on a fresh table."""

    name: str
    endpoint_url: str | None
    tables: list[str] = field(default_factory=list)

    _raw: Any = field(default=None, init=False, repr=False)

    def client(self) -> Any:
        """A low-level boto3 DynamoDB client on this backend (for raw checks)."""
        if self._raw is None:
            self._raw = _boto_client(self.endpoint_url)
        return self._raw

    def new_store(self) -> Store:
        if self.name == "memory":  # the in-memory backend, held to the same races
            from ostinato._local.memory import MemoryStore

            return MemoryStore()  # type: ignore[return-value]
        table = f"races-{self.name}-{uuid.uuid4().hex[:12]}"
        create_table(table, self.endpoint_url)
        self.tables.append(table)
        store = Store(table, REGION)
        # Create the pynamodb client before threads race for it, and take the first write's
        # one-off cost (DynamoDB Local: ~0.3 s) outside the races.
        store.save_heartbeat("warm-up", 0, 1, None)
        return store


@pytest.fixture(name="backend", params=[
    pytest.param("memory", id="memory"),
    pytest.param("moto-locked", id="moto-locked"),
    pytest.param("dynamodb-local", id="dynamodb-local", marks=pytest.mark.dynamodb_local),
])
def backend_fixture(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each test using this runs on the in-memory store, on locked moto and on DynamoDB
    Local."""
    if request.param == "memory":
        yield Backend("memory", None)
        return
    if request.param == "moto-locked":
        request.getfixturevalue("moto_locked")
        yield Backend("moto", None)
        return
    url = request.getfixturevalue("dynamodb_local")
    made = Backend("ddblocal", url)
    yield made
    client = _boto_client(url)
    for table in made.tables:  # the server is shared by the session (and maybe by CI)
        try:
            client.delete_table(TableName=table)
        except Exception:
            pass
