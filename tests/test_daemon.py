"""gatewayd as a real process: simulators in this process, the daemon as a subprocess, the
socket API as the only way in."""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import pytest

from gateway.api.client import SyncGatewayClient
from gateway.api.errors import ApiError
from gateway.smsc_sim import Account, SimConfig
from gateway.smsc_sim.thread import SimulatorThread
from tests.api_fakes import short_tmpdir
from tests.test_tls_bind import make_cert

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
PROFILE = (ROOT / "carrier_profiles" / "local-sim.toml").read_text()
LONG_TEXT = "Grüße aus Zürich 👋 " * 8  # UCS-2, several parts


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def sim(id_format: str = "hex") -> SimulatorThread:
    config = SimConfig(
        port=0,
        accounts=(Account("gwdemo", "demo1234"),),
        id_format=id_format,
        seed=1,
        receipt_delay=0.05,
        keep_submitted=10_000,
    )
    return SimulatorThread(config).start()


class Setup:
    """A config file, a profiles directory and a state dir under one short temporary dir."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.profiles = tmp / "profiles"
        self.profiles.mkdir()
        self.socket = tmp / "api.sock"
        self.config = tmp / "gatewayd.toml"
        self.config.write_text(
            'carrier_profiles_dir = "profiles"\n[api]\nsocket_path = "api.sock"\n'
            '[store]\nstate_dir = "state"\n[logging]\nlevel = "info"\n'
        )

    def add_carrier(self, name: str, port: int, id_format: str = "hex") -> None:
        text = PROFILE.replace("port = 2775", f"port = {port}")
        text = text.replace('id_format = "hex"', f'id_format = "{id_format}"')
        (self.profiles / f"{name}.toml").write_text(text)


def cleanup(daemon: Daemon, *sims: SimulatorThread) -> None:
    """What a test leaves running: a daemon still alive is killed, the simulators stopped."""
    if daemon.proc.poll() is None:
        daemon.kill()
    for simulator in sims:
        simulator.stop()


class Daemon:
    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.stderr = open(setup.tmp / "stderr.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.daemon", "--config", str(setup.config)],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=ROOT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.decode())

    def ready(self, timeout: float = 20.0) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no readiness line; stderr: {self.log()}") from None
        assert line.startswith("gatewayd ready:"), line + self.log()
        return line

    def log(self) -> str:
        return (self.setup.tmp / "stderr.log").read_text(errors="replace")

    def client(self) -> SyncGatewayClient:
        return SyncGatewayClient(self.setup.socket, timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        finally:
            self.stderr.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.stderr.close()


@pytest.fixture
def setup() -> Iterator[Setup]:
    with short_tmpdir() as tmp:
        yield Setup(tmp)


def receipts_for(client: SyncGatewayClient, ids: set[str], timeout: float = 20.0) -> dict:
    found: dict[str, list[dict]] = {}
    after = 0
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for event in client.read_events("test", after=after, limit=1000):
            after = event["seq"]
            if event["kind"] == "receipt" and event["message_id"] in ids:
                found.setdefault(event["message_id"], []).append(event)
        if set(found) == ids:
            return found
        time.sleep(0.05)
    raise AssertionError(f"receipts for {len(found)} of {len(ids)} messages")


def test_end_to_end_hex_and_decimal_carriers(setup: Setup) -> None:
    hexsim, decsim = sim("hex"), sim("decimal")
    setup.add_carrier("alpha", hexsim.port, "hex")
    setup.add_carrier("beta", decsim.port, "decimal")
    daemon = Daemon(setup)
    try:
        assert "carriers=alpha,beta" in daemon.ready()
        with daemon.client() as client:
            sent: dict[str, str] = {}
            for carrier in ("alpha", "beta"):
                for n in range(5):
                    text = LONG_TEXT if n == 0 else f"{carrier} message {n}"
                    reply = client.send_sms(
                        "+447700900001", sender_pool=carrier, text=text, client_ref=f"r{n}"
                    )
                    assert reply["duplicate"] is False
                    sent[reply["message_id"]] = carrier
            receipts = receipts_for(client, set(sent))
            assert hexsim.counters.submit_sm == decsim.counters.submit_sm > 5  # long one split
            for message_id, carrier in sent.items():
                msg = client.get_sms(message_id)
                assert msg["carrier"] == carrier
                ids = [p["carrier_message_id"] for p in msg["parts"]]
                assert all(ids)
                if carrier == "beta":
                    assert all(i.isdigit() for i in ids)
                events = [h["event"] for h in msg["history"]]
                assert events[0] == "accepted" and "resp" in events and "receipt" in events
                assert len(receipts[message_id]) == len(msg["parts"])
            status = client.status()
            assert status["carriers"]["alpha"]["binds_up"] == 1
            assert status["messages"]["accepted"] == 10
            health = status["carriers"]["alpha"]["health"]  # measured, over the last minute
            assert (health["state"], health["share"]) == ("healthy", 1.0)
            assert health["submits"] > 0 and health["p95_resp_s"] is not None
            # the same idempotency key twice: one message
            first = client.send_sms("+447700900002", sender="Shop", text="x", idempotency_key="k")
            again = client.send_sms("+447700900002", sender="Shop", text="x", idempotency_key="k")
            assert again == {"message_id": first["message_id"], "duplicate": True}
        assert daemon.stop() == 0
    finally:
        cleanup(daemon, hexsim, decsim)


def test_crash_and_restart_resends_every_accepted_message(setup: Setup) -> None:
    carrier = sim("hex")
    setup.add_carrier("alpha", carrier.port)
    daemon = Daemon(setup)
    accepted: set[str] = set()
    try:
        daemon.ready()
        with daemon.client() as client:
            for n in range(300):
                if n == 150:
                    daemon.proc.kill()  # mid-stream: some accepted messages are not sent yet
                try:
                    client.send_sms("+447700900003", sender="Shop", text=f"crash {n}")
                except Exception:
                    break
                accepted.add(f"crash {n}")
        daemon.kill()
        daemon = Daemon(setup)
        daemon.ready()

        def texts() -> set[str]:
            return {p.short_message.decode() for p in list(carrier.submitted)}

        wait_until(lambda: accepted <= texts(), what="every accepted message at the simulator")
        with daemon.client() as client:
            messages = client.status()["messages"]
        # Only parts submitted without a recorded response may reach the carrier twice: one
        # transceiver bind with a window of 10 in flight, plus responses the crash caught on
        # their way to the store.
        duplicates = carrier.counters.submit_sm - len(texts())
        possible = messages["possible_duplicates_after_restart"]
        assert 0 <= duplicates <= possible <= messages["resent_after_restart"]
        assert daemon.stop() == 0
    finally:
        cleanup(daemon, carrier)


def run_to_exit(setup: Setup) -> subprocess.CompletedProcess[str]:
    """gatewayd with the setup's config, expected to exit on its own (a refused config)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.daemon", "--config", str(setup.config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def test_bad_config_exits_2_naming_file_and_key(setup: Setup) -> None:
    setup.config.write_text('[limits]\nqueue_max = "many"\n')
    proc = run_to_exit(setup)
    assert proc.returncode == 2
    assert str(setup.config) in proc.stderr and "limits.queue_max" in proc.stderr


def test_bad_carrier_profile_exits_2(setup: Setup) -> None:
    (setup.profiles / "bad.toml").write_text(PROFILE.replace("size = 10", "size = 0"))
    proc = run_to_exit(setup)
    assert proc.returncode == 2
    assert "bad.toml" in proc.stderr and "window.size" in proc.stderr


def test_sigterm_unbinds_and_exits_0(setup: Setup) -> None:
    carrier = sim()
    setup.add_carrier("alpha", carrier.port)
    setup.config.write_text(setup.config.read_text().replace('level = "info"', 'format = "json"'))
    daemon = Daemon(setup)
    try:
        daemon.ready()
        wait_until(lambda: carrier.counters.binds_ok == 1, what="bind")
        assert daemon.stop(signal.SIGTERM) == 0
        wait_until(lambda: carrier.counters.unbinds == 1, what="unbind")
        assert not setup.socket.exists()
        lines = daemon.log().splitlines()
        assert lines and all(json.loads(line)["level"] for line in lines)
    finally:
        cleanup(daemon, carrier)


def test_sighup_adds_a_carrier_and_keeps_existing_binds(setup: Setup) -> None:
    first, second = sim(), sim("decimal")
    setup.add_carrier("alpha", first.port)
    daemon = Daemon(setup)
    try:
        daemon.ready()
        wait_until(lambda: first.counters.binds_ok == 1, what="first bind")
        setup.add_carrier("beta", second.port, "decimal")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: second.counters.binds_ok == 1, what="second bind")
        with daemon.client() as client:
            reply = client.send_sms("+447700900004", sender_pool="beta", text="after reload")
            assert client.get_sms(reply["message_id"])["carrier"] == "beta"
            assert set(client.status()["carriers"]) == {"alpha", "beta"}
        assert first.counters.binds_ok == 1 and first.counters.connections_closed == 0
        # a changed profile restarts its carrier; a removed one is unbound
        setup.add_carrier("alpha", first.port)
        alpha = setup.profiles / "alpha.toml"
        alpha.write_text(alpha.read_text().replace("tps = 100", "tps = 50"))
        (setup.profiles / "beta.toml").unlink()
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: second.counters.unbinds == 1, what="beta unbound")
        wait_until(lambda: first.counters.binds_ok == 2, what="alpha rebound")
        assert daemon.stop() == 0
    finally:
        cleanup(daemon, first, second)


def test_api_fuzz_then_status_still_answers(setup: Setup) -> None:
    carrier = sim()
    setup.add_carrier("alpha", carrier.port)
    daemon = Daemon(setup)
    rng = random.Random(7)
    try:
        daemon.ready()
        for _ in range(40):
            with socket.socket(socket.AF_UNIX) as raw:
                raw.settimeout(2)
                raw.connect(str(setup.socket))
                body = rng.choice(
                    [
                        rng.randbytes(rng.randrange(0, 64)),
                        msgpack.packb({"id": 1, "method": "sms.send", "params": {"to": 5}}),
                        msgpack.packb([1, 2, rng.random()]),
                        msgpack.packb(
                            {
                                "id": 2,
                                "method": rng.choice(["status", "x", "sms.get"]),
                                "params": {"message_id": rng.randbytes(8)},
                            }
                        ),
                    ]
                )
                length = rng.choice([len(body), len(body), rng.randrange(0, 2**32)])
                try:
                    raw.sendall(struct.pack(">I", length) + body)
                    raw.recv(4096)
                except OSError:
                    pass
        with daemon.client() as client:
            assert client.status()["carriers"]["alpha"]["binds_up"] == 1
        assert daemon.proc.poll() is None
        assert daemon.stop() == 0
    finally:
        cleanup(daemon, carrier)


def test_gatewayctl_send_against_the_daemon(setup: Setup) -> None:
    carrier = sim()
    setup.add_carrier("alpha", carrier.port)
    daemon = Daemon(setup)
    try:
        daemon.ready()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "--socket",
                str(setup.socket),
                "send",
                "--to",
                "+447700900005",
                "--from",
                "Shop",
                "--text",
                "via gatewayctl",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
            env={**os.environ},
        )
        assert proc.returncode == 0, proc.stderr
        wait_until(lambda: carrier.counters.submit_sm == 1, what="submit at the simulator")
        assert daemon.stop() == 0
    finally:
        cleanup(daemon, carrier)


# -- TLS carrier profiles ---------------------------------------------------------------------


def tls_sim(tmp: Path) -> tuple[SimulatorThread, Path]:
    cert, key = make_cert(tmp / "certs", "smsc")
    config = SimConfig(
        port=0, accounts=(Account("gwdemo", "demo1234"),), tls_cert=str(cert), tls_key=str(key)
    )
    return SimulatorThread(config).start(), cert


def add_tls_carrier(setup: Setup, name: str, port: int, tls_ca: str) -> Path:
    setup.add_carrier(name, port)
    path = setup.profiles / f"{name}.toml"
    path.write_text(path.read_text().replace("tls = false", f'tls = true\ntls_ca = "{tls_ca}"'))
    return path


def test_unusable_tls_ca_exits_2_naming_file_and_key(setup: Setup) -> None:
    path = add_tls_carrier(setup, "alpha", 2775, "missing.pem")
    proc = run_to_exit(setup)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()  # one line, no traceback
    assert line.startswith(f"gatewayd: {path}: connection.tls_ca: expected "), line
    assert str(setup.profiles / "missing.pem") in line and "No such file" in line


def test_sighup_with_an_unusable_tls_ca_keeps_the_carrier_running(setup: Setup) -> None:
    carrier, cert = tls_sim(setup.tmp)
    shutil.copy(cert, setup.profiles / "ca.pem")
    # relative to the profile's directory, while the daemon runs in another one (ROOT)
    path = add_tls_carrier(setup, "alpha", carrier.port, "ca.pem")
    daemon = Daemon(setup)
    try:
        daemon.ready()
        wait_until(lambda: carrier.counters.binds_ok == 1, what="TLS bind")
        path.write_text(path.read_text().replace('tls_ca = "ca.pem"', 'tls_ca = "nope.pem"'))
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in daemon.log(), what="reload refused")
        (refusal,) = [line for line in daemon.log().splitlines() if "reload refused" in line]
        assert f"{path}: connection.tls_ca: expected " in refusal and "nope.pem" in refusal
        assert daemon.proc.poll() is None
        with daemon.client() as client:
            client.send_sms("+447700900006", sender_pool="alpha", text="still bound")
            assert client.status()["carriers"]["alpha"]["binds_up"] == 1
        wait_until(lambda: carrier.counters.submit_sm == 1, what="submit on the kept bind")
        assert carrier.counters.binds_ok == 1 and carrier.counters.connections_closed == 0
        # fixed: the next SIGHUP restarts the changed carrier as usual
        text = path.read_text().replace('tls_ca = "nope.pem"', 'tls_ca = "ca.pem"')
        path.write_text(text.replace("tps = 100", "tps = 50"))
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: carrier.counters.binds_ok == 2, what="alpha rebound")
        assert daemon.stop() == 0
    finally:
        cleanup(daemon, carrier)


def test_routes_send_by_prefix_and_change_on_sighup(setup: Setup) -> None:
    uk, us = sim(), sim()
    setup.add_carrier("alpha", uk.port)
    setup.add_carrier("beta", us.port)
    base = setup.config.read_text()
    routes = (
        '[[routes]]\nprefix = "+44"\ncarriers = [{ carrier = "alpha" }]\n'
        '[[routes]]\nprefix = "+1"\ncarriers = [{ carrier = "beta" }]\n'
    )
    setup.config.write_text(base + routes)
    daemon = Daemon(setup)
    try:
        daemon.ready()
        wait_until(lambda: uk.counters.binds_ok == 1 and us.counters.binds_ok == 1, what="binds")
        with daemon.client() as client:
            to_uk = client.send_sms("+447700900001", sender="ACME", text="to the UK")
            to_us = client.send_sms("+12025550123", sender="ACME", text="to the US")
            assert client.get_sms(to_uk["message_id"])["carrier"] == "alpha"
            assert client.get_sms(to_us["message_id"])["carrier"] == "beta"
            with pytest.raises(ApiError) as refused:
                client.send_sms("+33612345678", sender="ACME", text="to France")
            assert refused.value.code == "E_NO_ROUTE"
            assert client.status()["routes"] == {"+1": {"beta": 1.0}, "+44": {"alpha": 1.0}}
        wait_until(lambda: uk.counters.submit_sm == 1 and us.counters.submit_sm == 1, what="sent")
        # the UK goes to beta now; a route to a carrier without a profile keeps the table
        setup.config.write_text(
            base
            + routes.replace(
                '"+44"\ncarriers = [{ carrier = "alpha" }]',
                '"+44"\ncarriers = [{ carrier = "beta" }]',
            )
        )
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload: 2 routes" in daemon.log(), what="routes reloaded")
        with daemon.client() as client:
            again = client.send_sms("+447700900002", sender="ACME", text="to the UK, via beta")
            assert client.get_sms(again["message_id"])["carrier"] == "beta"
        setup.config.write_text(base + routes.replace('"alpha"', '"ghost"'))
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "routes unchanged" in daemon.log(), what="bad routes refused")
        assert "routes[0].carriers[0].carrier" in daemon.log()
        with daemon.client() as client:
            kept = client.send_sms("+447700900003", sender="ACME", text="still via beta")
            assert client.get_sms(kept["message_id"])["carrier"] == "beta"
        assert daemon.stop() == 0
    finally:
        cleanup(daemon, uk, us)


def test_a_route_to_a_carrier_without_a_profile_refuses_the_start(setup: Setup) -> None:
    carrier = sim()
    setup.add_carrier("alpha", carrier.port)
    setup.config.write_text(
        setup.config.read_text() + '[[routes]]\nprefix = "+44"\ncarriers = [{ carrier = "beta" }]\n'
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gateway.daemon", "--config", str(setup.config)],
            capture_output=True, text=True, timeout=30, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 2
        assert f"{setup.config}: routes[0].carriers[0].carrier: expected" in done.stderr
    finally:
        carrier.stop()
