"""Run `ostinato dev` as a subprocess for end-to-end tests, and talk HTTP to it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"ready on (http://127\.0\.0\.1:\d+)")


class DevServer:
    """`python -m ostinato._cli.main dev APP --port 0`, its log in a file, always stopped."""

    def __init__(self, log_path: Path, app: str = "tests.apps.devapp:app",
                 *options: str) -> None:
        self.log_path = log_path
        self.app = app
        self.options = options
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.startup_seconds = 0.0

    def start(self, timeout: float = 90.0) -> DevServer:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("AWS_ENDPOINT_URL", None)
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ostinato._cli.main", "dev", self.app, "--port", "0",
                 *self.options],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if match := READY.search(self.log()):
                self.url = match.group(1)
                self.startup_seconds = time.monotonic() - started
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"ostinato dev did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL to the whole process group if it lingers."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    # -- HTTP ---------------------------------------------------------------------------
    def http(self, method: str, path: str, body: Any = None, *,
             raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def wait_for(self, wid: str, predicate: Callable[[dict[str, Any]], bool],
                 timeout: float = 20.0) -> dict[str, Any]:
        """Poll describe until `predicate(description)` holds."""
        deadline = time.monotonic() + timeout
        described: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status, described = self.http("GET", f"/workflows/{wid}")
            if status == 200 and predicate(described):
                return described
            time.sleep(0.05)
        raise AssertionError(f"{wid} never got there; last: {described}\n{self.log()[-3000:]}")


def running_server(tmp_path_factory: Any, name: str) -> Iterator[DevServer]:
    """Body of a module-scoped fixture: a started server, stopped whatever happens."""
    server = DevServer(tmp_path_factory.mktemp(name) / "dev.log")
    try:
        yield server.start()
    finally:
        server.stop()
