"""gatewayctl's API commands, run as a subprocess against a test server: the operators'
contract (output, --json, exit status, error code on stderr)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from api_fakes import TIMEOUT, ThreadedServer

from gateway.api.errors import ApiError, ErrorCode


@pytest.fixture
def server() -> Iterator[ThreadedServer]:
    srv = ThreadedServer()
    try:
        yield srv
    finally:
        srv.close()


def ctl(
    server: ThreadedServer, *args: str, env_socket: bool = False
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("GATEWAY_SOCKET", None)
    socket_args = ["--socket", str(server.path)]
    if env_socket:
        env["GATEWAY_SOCKET"], socket_args = str(server.path), []
    return subprocess.run(
        [*CLI, *socket_args, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
    )


CLI = [sys.executable, "-m", "gateway.cli"]
SEND = ["send", "--to", "+4915112345678", "--from", "ACME", "--text", "hello"]


def test_send_prints_the_message_id(server: ThreadedServer) -> None:
    done = ctl(server, *SEND)
    assert (done.returncode, done.stdout, done.stderr) == (0, "m1\n", "")
    done = ctl(server, *SEND, "--json", "--client-ref", "r1", env_socket=True)
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"message_id": "m2", "duplicate": False}


def test_socket_option_after_the_command(server: ThreadedServer) -> None:
    done = subprocess.run(
        [*CLI, "--socket", "/nonexistent", "status", "--socket", str(server.path), "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0 and json.loads(done.stdout)["version"] == "test"


def test_get_and_status(server: ThreadedServer) -> None:
    assert ctl(server, *SEND).returncode == 0
    done = ctl(server, "get", "m1")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert "state  accepted" in lines and "to  +4915112345678" in lines
    assert json.loads(ctl(server, "get", "m1", "--json").stdout)["from"] == "ACME"
    done = ctl(server, "status")
    assert done.returncode == 0 and "queue.depth  1" in done.stdout.splitlines()
    assert json.loads(ctl(server, "status", "--json").stdout)["queue"] == {"depth": 1, "limit": 10}


def test_errors_exit_non_zero_with_code_on_stderr(server: ThreadedServer) -> None:
    done = ctl(server, "get", "nope")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("gatewayctl: E_NOT_FOUND: ")
    done = ctl(server, "send", "--to", "0151", "--from", "ACME", "--text", "x")
    assert done.returncode == 1 and "E_BAD_NUMBER" in done.stderr
    server.service.queue_full = True
    done = ctl(server, *SEND)
    assert done.returncode == 75 and "E_QUEUE_FULL" in done.stderr  # retriable


def test_unreachable_daemon_and_usage() -> None:
    done = subprocess.run(
        [*CLI, "--socket", "/nonexistent/api.sock", "status"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 75 and "E_CONNECTION" in done.stderr
    done = subprocess.run(
        [*CLI, "send", "--text", "x"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 2


def test_events_prints_and_acks(server: ThreadedServer) -> None:
    for n in range(3):
        server.do(server.service.append, "receipt", message_id=f"m{n}")
    peek = ctl(server, "events", "--json", "--no-ack")
    assert [json.loads(line)["seq"] for line in peek.stdout.splitlines()] == [1, 2, 3]
    done = ctl(server, "events", "--json")
    assert done.returncode == 0
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(e["seq"], e["kind"], e["message_id"]) for e in events] == [
        (1, "receipt", "m0"),
        (2, "receipt", "m1"),
        (3, "receipt", "m2"),
    ]
    assert server.service.cursors["gatewayctl"] == 3
    assert ctl(server, "events", "--json").stdout == ""  # acked: nothing left
    server.do(server.service.append, "inbound", text="hi")
    done = ctl(server, "events")
    assert done.stdout.startswith("4 2026-01-01T00:00:00Z inbound ")
    assert json.loads(done.stdout.split(" ", 3)[3]) == {"text": "hi"}


def test_events_follow(server: ThreadedServer) -> None:
    server.do(server.service.append, "receipt", message_id="m1")
    proc = subprocess.Popen(
        [*CLI, "--socket", str(server.path), "events", "--follow", "--json", "--consumer", "ops"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(TIMEOUT, proc.kill)  # bounds the blocking readline()s
    watchdog.start()
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["seq"] == 1  # replayed
        server.do(server.service.append, "inbound", text="new")
        assert json.loads(proc.stdout.readline()) == {
            "seq": 2,
            "kind": "inbound",
            "at": "2026-01-01T00:00:00Z",
            "text": "new",
        }
    finally:
        proc.terminate()
        proc.communicate(timeout=TIMEOUT)
        watchdog.cancel()


def test_api_error_is_an_exception_with_code() -> None:
    error = ApiError(ErrorCode.E_QUEUE_FULL, "full")
    assert error.retriable and ApiError.from_wire(error.to_wire()) == error
