"""The `ostinato` CLI as a user runs it: subprocesses against `ostinato dev` (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.apps.devserver import ROOT, DevServer, running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    yield from running_server(tmp_path_factory, "cli")


def ostinato(*args: str, api_url: str | None = None, cwd: Path = ROOT,
             ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if api_url:
        env["OSTINATO_API_URL"] = api_url
    done = subprocess.run([sys.executable, "-m", "ostinato._cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0]


def test_start_signal_query_result_describe(dev: DevServer):
    url = dev.url
    done = ostinato("workflow", "start", "approval", '["pen", "ink"]', "--id", "cli-1",
                    api_url=url)
    assert done.stdout.startswith("started cli-1 (run ")
    dev.wait_for("cli-1", lambda d: d["custom_status"] == "awaiting approval")

    progress = ostinato("workflow", "query", "cli-1", "progress", api_url=url)
    assert json.loads(progress.stdout) == {"approved": [], "items": ["pen", "ink"]}
    signalled = ostinato("workflow", "signal", "cli-1", "approve", "ann", api_url=url)
    assert signalled.stdout.strip() == "signalled cli-1: approve"  # "ann": a plain string
    result = ostinato("workflow", "result", "cli-1", "--timeout", "20", api_url=url)
    assert json.loads(result.stdout) == {"shouted": ["PEN", "INK"], "approved_by": "ann"}

    human = ostinato("workflow", "describe", "cli-1", api_url=url).stdout
    assert "COMPLETED" in human and "approval" in human
    machine = json.loads(ostinato("workflow", "describe", "cli-1", "--json",
                                  api_url=url).stdout)
    assert machine["status"] == "COMPLETED" and machine["custom_status"] == "done"


def test_start_json_and_duplicate(dev: DevServer):
    started = json.loads(ostinato("workflow", "start", "nap", "600", "--id", "cli-dup",
                                  "--json", api_url=dev.url).stdout)
    assert started["workflow_id"] == "cli-dup" and started["run_id"]
    again = ostinato("workflow", "start", "nap", "1", "--id", "cli-dup", api_url=dev.url,
                     ok=False)
    one_line_error(again, "already running", "409")


def test_history_timeline_json_and_replay(dev: DevServer, tmp_path: Path):
    url = dev.url
    ostinato("workflow", "start", "approval", '["a"]', "--id", "cli-h", api_url=url)
    ostinato("workflow", "signal", "cli-h", "approve", '"bo"', api_url=url)
    ostinato("workflow", "result", "cli-h", "--timeout", "20", api_url=url)

    timeline = ostinato("workflow", "history", "cli-h", api_url=url).stdout
    for expected in ("WorkflowExecutionStarted", 'shout("a")', '-> "A"', 'approve("bo")',
                     "WorkflowExecutionCompleted"):
        assert expected in timeline
    saved = tmp_path / "cli-h.json"
    saved.write_text(ostinato("workflow", "history", "cli-h", "--json", api_url=url).stdout)

    same = ostinato("replay", "tests.apps.devapp:app", str(saved))
    assert same.stdout.startswith("ok: 5 events of workflow 'cli-h'")

    (tmp_path / "changed.py").write_text(textwrap.dedent("""
        import ostinato

        @ostinato.activity
        def whisper(text: str) -> str:
            return text.lower()

        @ostinato.workflow
        async def approval(ctx, items):
            return [await ctx.execute_activity(whisper, item) for item in items]

        app = ostinato.App(workflows=[approval], activities=[whisper])
    """))
    diverged = ostinato("replay", "changed:app", str(saved), cwd=tmp_path, ok=False)
    one_line_error(diverged, "cli-h", "diverges", "ActivityTaskScheduled", "shout", "whisper")


def test_update_and_callback(dev: DevServer):
    url = dev.url
    ostinato("workflow", "start", "ticket", "printer", "--id", "cli-ticket", api_url=url)
    dev.wait_for("cli-ticket", lambda d: d["status"] == "RUNNING")
    token = json.loads(ostinato("workflow", "query", "cli-ticket", "token", api_url=url).stdout)

    noted = ostinato("workflow", "update", "cli-ticket", "note", "jammed", api_url=url)
    assert json.loads(noted.stdout) == ["jammed"]
    one_line_error(ostinato("workflow", "update", "cli-ticket", "note", '""', api_url=url,
                            ok=False), "must not be empty", "update_rejected", "400")
    assert ostinato("callback", "heartbeat", token, api_url=url).stdout.strip() == (
        "callback heartbeat sent")
    done = ostinato("callback", "complete", token, '{"fixed": true}', "--json", api_url=url)
    assert json.loads(done.stdout) == {"result": None}
    one_line_error(ostinato("callback", "complete", token, api_url=url, ok=False),
                   "already settled", "409")
    one_line_error(ostinato("callback", "fail", "bogus", "no", "--type", "T", api_url=url,
                            ok=False), "callback_not_found", "404")
    result = ostinato("workflow", "result", "cli-ticket", "--timeout", "20", api_url=url)
    assert json.loads(result.stdout) == {"title": "printer", "notes": ["jammed"],
                                         "decision": {"fixed": True}}


def test_update_with_start(dev: DevServer):
    url = dev.url
    uws = ("workflow", "update-with-start", "ticket", "printer", "--id", "cli-uws",
           "--update", "note")
    first = ostinato(*uws, "--update-arg", "jammed", api_url=url)
    assert json.loads(first.stdout) == ["jammed"]  # started, and the update's result
    again = json.loads(ostinato(*uws, "--update-arg", '"fixed"', "--json", api_url=url).stdout)
    assert again["workflow_id"] == "cli-uws" and again["result"] == ["jammed", "fixed"]
    assert json.loads(ostinato("workflow", "describe", "cli-uws", "--json",
                               api_url=url).stdout)["run_id"] == again["run_id"]
    one_line_error(ostinato(*uws, "--update-arg", '""', api_url=url, ok=False),
                   "must not be empty", "update_rejected", "400")
    one_line_error(ostinato(*uws, "--update-arg", "x", "--id-conflict-policy", "fail",
                            api_url=url, ok=False), "already running", "409")
    ostinato("workflow", "terminate", "cli-uws", api_url=url)


def test_cancel_and_terminate(dev: DevServer):
    url = dev.url
    for wid in ("cli-cancel", "cli-term"):
        ostinato("workflow", "start", "nap", "600", "--id", wid, api_url=url)
        dev.wait_for(wid, lambda d: d["status"] == "RUNNING")
    assert ostinato("workflow", "cancel", "cli-cancel", api_url=url).stdout.strip() == (
        "cancellation requested for cli-cancel")
    assert ostinato("workflow", "terminate", "cli-term", "--reason", "bye",
                    api_url=url).stdout.strip() == "terminated cli-term"
    one_line_error(ostinato("workflow", "result", "cli-term", "--timeout", "20", api_url=url,
                            ok=False), "cli-term", "terminated", "bye")
    one_line_error(ostinato("workflow", "result", "cli-cancel", "--timeout", "20",
                            api_url=url, ok=False), "cli-cancel", "cancelled")


def test_list_table_filters_and_json(dev: DevServer):
    url = dev.url
    ostinato("workflow", "start", "nap", "0", "--id", "cli-list-a", api_url=url)
    ostinato("workflow", "start", "nap", "0", "--id", "cli-list-b", api_url=url)
    for wid in ("cli-list-a", "cli-list-b"):
        dev.wait_for(wid, lambda d: d["status"] == "COMPLETED")

    table = ostinato("workflow", "list", "--status", "COMPLETED", "--type", "nap",
                     api_url=url).stdout
    assert "cli-list-a" in table and "cli-list-b" in table and "COMPLETED" in table
    assert "workflow id" in table.splitlines()[0]
    listed = json.loads(ostinato("workflow", "list", "--status", "COMPLETED", "--type", "nap",
                                 "--limit", "1", "--json", api_url=url).stdout)
    assert len(listed["workflows"]) == 1 and listed["next_token"]
    running = json.loads(ostinato("workflow", "list", "--status", "RUNNING", "--json",
                                  api_url=url).stdout)
    assert not {"cli-list-a", "cli-list-b"} & {w["workflow_id"] for w in running["workflows"]}


def test_errors_are_one_line(dev: DevServer):
    one_line_error(ostinato("workflow", "describe", "cli-ghost", api_url=dev.url, ok=False),
                   "'cli-ghost' not found", "404")
    one_line_error(ostinato("workflow", "signal", "cli-ghost", "approve", api_url=dev.url,
                            ok=False), "not found")
    one_line_error(ostinato("workflow", "start", "refund", api_url=dev.url, ok=False),
                   "unknown workflow type", "refund")
    one_line_error(ostinato("workflow", "update", "cli-ghost", "add", api_url=dev.url,
                            ok=False), "'cli-ghost' not found", "404")
    one_line_error(ostinato("workflow", "describe", "x", "--api-url", "http://127.0.0.1:9",
                            ok=False), "cannot reach", "ostinato dev")


def test_replay_refuses_what_is_not_a_history(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"events": "nope"}')
    one_line_error(ostinato("replay", "tests.apps.devapp:app", str(bad), ok=False),
                   "not an ostinato history")
    bad.write_text("{")
    one_line_error(ostinato("replay", "tests.apps.devapp:app", str(bad), ok=False),
                   "not JSON")
    one_line_error(ostinato("replay", "nowhere.app:app", str(bad), ok=False))
