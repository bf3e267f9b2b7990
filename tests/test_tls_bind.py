"""SMPP binds over TLS: the gateway's CarrierLink (``[connection] tls``/``tls_ca``) against the
SMSC simulator serving TLS (``[server] tls_cert``/``tls_key``), with certificates made by the
openssl CLI at test time."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import gateway.carriers.link as link_module
from gateway.carriers.link import CarrierLink
from gateway.carriers.outbound import build_submits, encode_message, outbound_parts
from gateway.ops.carrier_profile import CarrierProfile, Reconnect, load_carrier_profile
from gateway.smpp.codec import FrameDecoder, encode_pdu
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.pdu import BindTransceiver, SubmitSm
from gateway.smsc_sim import (
    ConfigError,
    SimConfig,
    SimulatorThread,
    SmscSimulator,
    build_config,
    load_config,
)
from gateway.smsc_sim.__main__ import main as cli_main
from gateway.store.sqlite_store import NewMessage, SqliteStore
from tests.test_smsc_sim import RawEsme

pytestmark = pytest.mark.timeout(60)

SYSTEM_ID, PASSWORD = "smppclient1", "password"
HANG_GUARD = 20.0  # seconds; only there so that a broken build fails instead of hanging


def make_cert(
    directory: Path, name: str, names: str = "IP:127.0.0.1,DNS:localhost"
) -> tuple[Path, Path]:
    """A self-signed certificate for ``names`` (its subjectAltName; by default 127.0.0.1 and
    localhost), and its unencrypted key."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName={names}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Two unrelated self-signed certificates: the simulator's and a stranger's."""
    directory = tmp_path_factory.mktemp("certs")
    return {name: make_cert(directory, name) for name in ("smsc", "other")}


def tls_sim_config(cert: Path, key: Path, **changes: object) -> SimConfig:
    return SimConfig(port=0, tls_cert=str(cert), tls_key=str(key)).replace(**changes)


def make_profile(tmp_path: Path, port: int, tls_ca: Path, *, count: int = 1) -> CarrierProfile:
    path = tmp_path / "tls-sim.toml"
    path.write_text(
        f"""
[connection]
host = "127.0.0.1"
port = {port}
tls = true
tls_ca = "{tls_ca}"
[account]
system_id = "{SYSTEM_ID}"
password = "{PASSWORD}"
[binds]
count = {count}
[window]
size = 5
response_timeout_s = 5
[throughput]
tps = 1000
[enquire_link]
interval_s = 5
timeout_s = 2
[reconnect]
initial_s = 0.02
max_s = 0.1
jitter = 0.0
[submit]
source_addr = "GW"
source_ton = 5
source_npi = 0
"""
    )
    return load_carrier_profile(path)


def run(test: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(HANG_GUARD * 2):
            await test()

    asyncio.run(bounded())


async def eventually(predicate: Callable[[], Awaitable[bool] | bool]) -> None:
    async with asyncio.timeout(HANG_GUARD):
        while True:
            outcome = predicate()
            if await outcome if isinstance(outcome, Awaitable) else outcome:
                return
            await asyncio.sleep(0.02)


async def send(link: CarrierLink, store: SqliteStore, text: str, ref: int) -> str:
    dest = "447700900001"
    encoded, parts = encode_message(link.profile, text)
    message_id, _ = await store.accept(
        NewMessage("client", "GW", dest, encoded.payload, encoded.data_coding, parts)
    )
    link.submit(outbound_parts(message_id, build_submits(link.profile, encoded, dest, ref)))
    return message_id


async def states(store: SqliteStore, ids: list[str]) -> list[str]:
    records = [await store.get_message(message_id) for message_id in ids]
    return [record.state if record is not None else "missing" for record in records]


# -- the whole SMS path over TLS ------------------------------------------------------------


def test_carrier_link_binds_sends_and_correlates_receipts_over_tls(
    tmp_path: Path, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = certs["smsc"]

    async def test() -> None:
        async with SmscSimulator(tls_sim_config(cert, key, receipt_delay=0.05)) as sim:
            assert sim.tls
            profile = make_profile(tmp_path, sim.port, tls_ca=cert, count=2)
            assert profile.connection.tls and profile.connection.tls_ca == str(cert)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            await link.wait_bound(timeout=HANG_GUARD)
            ids = [await send(link, store, f"over TLS {n}", ref=n) for n in range(6)]

            async def delivered() -> bool:
                return await states(store, ids) == ["delivered"] * len(ids)

            await eventually(delivered)
            for message_id in ids:
                record = await store.get_message(message_id)
                assert record is not None
                (part,) = record.parts
                assert part.carrier == profile.name and part.carrier_message_id_norm
                assert [h.event for h in record.history].count("receipt") == 1
            # MO traffic comes back over the same TLS binds
            await sim.inject_mo("hello over TLS", system_id=SYSTEM_ID)

            async def inbound_texts() -> list[str]:
                events = await store.read_events("t", after_seq=0, limit=1000)
                return [e.body["text"] for e in events if e.kind == "sms.inbound"]

            async def mo_stored() -> bool:
                return bool(await inbound_texts())

            await eventually(mo_stored)
            assert await inbound_texts() == ["hello over TLS"]
            assert sim.counters.binds_ok == 2 and sim.counters.receipts_delivered == 6
            assert link.counters.accepted == 6 and link.counters.failed == 0
            assert link.counters.connect_errors == 0 and link.counters.bind_failures == 0
            assert await link.stop(2.0) == []
            await store.aclose()

    run(test)


# -- an SMSC certificate the profile's CA does not vouch for ---------------------------------


def test_untrusted_smsc_certificate_fails_the_bind_and_is_retried_with_backoff(
    tmp_path: Path,
    certs: dict[str, tuple[Path, Path]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = certs["smsc"]
    stranger, _ = certs["other"]
    delays: list[tuple[int, float]] = []

    def recording_backoff(failures: int, reconnect: Reconnect, rng: object) -> float:
        delay = backoff(failures, reconnect, rng)  # type: ignore[arg-type]
        delays.append((failures, delay))
        return delay

    backoff = link_module.backoff_delay
    monkeypatch.setattr(link_module, "backoff_delay", recording_backoff)

    async def test() -> None:
        async with SmscSimulator(tls_sim_config(cert, key)) as sim:
            profile = make_profile(tmp_path, sim.port, tls_ca=stranger)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            queued = await send(link, store, "never sent", ref=1)
            await eventually(lambda: link.counters.tls_failures >= 5)
            assert link.binds_up == 0 and link.counters.connect_errors == 0
            assert link.counters.binds_up == 0 and link.counters.submitted == 0
            # the handshake never completed: the simulator's core never saw a connection
            assert sim.counters.connections_opened == 0 and sim.counters.binds_ok == 0
            # the message waits for a bind; stop hands it back instead of losing it
            leftover = await link.stop(0.5)
            assert [p.message_id for p in leftover] == [queued]
            await store.aclose()
            # a client trusting the right CA is still served by the same simulator
            good = make_profile(tmp_path, sim.port, tls_ca=cert)
            store = SqliteStore(str(tmp_path / "db2.sqlite"))
            ok_link = CarrierLink(good, store)
            await ok_link.start()
            await ok_link.wait_bound(timeout=HANG_GUARD)
            await ok_link.stop(0.5)
            await store.aclose()

    with caplog.at_level(logging.WARNING, logger="gateway.carriers.link"):
        run(test)
    # a verification failure is not a generic connect failure: one ERROR naming the profile
    # file, the key to check and OpenSSL's reason, not a warning per retry
    assert not [r for r in caplog.records if "connect failed" in r.getMessage()]
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = error.getMessage()
    assert "connection.tls_ca" in message and str(tmp_path / "tls-sim.toml") in message
    assert "self-signed certificate" in message and str(stranger) in message
    # backoff: the failure count grows by one per attempt and the delay doubles up to max_s
    first = [failures for failures, _ in delays[:5]]
    assert first == [0, 1, 2, 3, 4]
    assert [delay for _, delay in delays[:5]] == pytest.approx([0.02, 0.04, 0.08, 0.1, 0.1])


# -- the simulator's TLS port and plain-TCP clients (through the thread helper) -------------


def plain_bind_is_refused(port: int) -> bool:
    """A plain-TCP bind_transceiver on the TLS port: True when the simulator closes the
    connection without an SMPP answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD) as sock:
        sock.sendall(encode_pdu(BindTransceiver(system_id=SYSTEM_ID, password=PASSWORD)))
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    # whatever came back (a TLS alert at most) is no SMPP PDU
    decoder = FrameDecoder()
    decoder.feed(received)
    try:
        return decoder.next_pdu() is None
    except Exception:  # not even a well-formed SMPP header
        return True


def tls_bind(port: int, cafile: Path, hostname: str) -> RawEsme:
    context = ssl.create_default_context(cafile=str(cafile))
    raw = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD)
    esme = RawEsme(sock=context.wrap_socket(raw, server_hostname=hostname))
    esme.send(BindTransceiver(system_id=SYSTEM_ID, password=PASSWORD))
    assert esme.recv().command_status == S.ESME_ROK
    return esme


def test_plain_tcp_on_the_tls_port_is_dropped_and_tls_clients_are_still_served(
    certs: dict[str, tuple[Path, Path]],
) -> None:
    cert, key = certs["smsc"]
    with SimulatorThread(tls_sim_config(cert, key)) as sim:
        assert plain_bind_is_refused(sim.port)
        # a plain client that never speaks holds no one up either
        with socket.create_connection(("127.0.0.1", sim.port), timeout=HANG_GUARD):
            for hostname in ("localhost", "127.0.0.1"):
                esme = tls_bind(sim.port, cert, hostname)
                esme.send(
                    SubmitSm(source_addr="GW", destination_addr="447700900001", short_message=b"x")
                )
                response = esme.recv()
                assert response.command_status == S.ESME_ROK and response.message_id
                esme.sock.close()
        assert plain_bind_is_refused(sim.port)
        sim.wait_for(lambda: sim.counters.binds_ok == 2 and sim.counters.accepted == 2)
        # plain connections never reached the SMPP core; only the two TLS ones did
        assert sim.counters.connections_opened == 2 and sim.counters.framing_errors == 0
        assert sim.counters.decode_errors == 0 and sim.counters.generic_nacks == 0


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "key"),
    [
        ({"tls_cert": "cert.pem"}, "server.tls_key"),
        ({"tls_key": "key.pem"}, "server.tls_cert"),
        ({"tls_cert": "", "tls_key": "key.pem"}, "server.tls_cert"),
        ({"tls_cert": "cert.pem", "tls_key": 1}, "server.tls_key"),
        ({"tls": True}, "server.tls"),
    ],
)
def test_tls_settings_are_checked_and_errors_name_the_key(server: dict, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        build_config({"server": server})
    assert error.value.key == key
    assert str(error.value).startswith(f"{key}: ")


def test_tls_cert_without_tls_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "sim.toml"
    config.write_text('[server]\ntls_cert = "cert.pem"\n')
    with pytest.raises(ConfigError, match=r"^server\.tls_key: is required when server\.tls_cert"):
        build_config({"server": {"tls_cert": "cert.pem"}})
    assert cli_main(["--config", str(config)]) == 2
    assert cli_main(["--tls-key", "key.pem"]) == 2


def test_unusable_tls_files_are_config_errors_naming_the_key(
    tmp_path: Path, certs: dict[str, tuple[Path, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = certs["smsc"]
    _, other_key = certs["other"]
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a PEM file\n")
    encrypted = tmp_path / "encrypted-key.pem"
    subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:secret",
         "-out", str(encrypted)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    cases = [
        (tmp_path / "missing.pem", key, "server.tls_cert"),
        (cert, tmp_path / "missing-key.pem", "server.tls_key"),
        (tmp_path, key, "server.tls_cert"),  # a directory
        (garbage, key, "server.tls_cert"),
        (cert, garbage, "server.tls_key"),
        (cert, other_key, "server.tls_key"),  # a key that is not the certificate's
        (cert, encrypted, "server.tls_key"),  # must not prompt for a pass phrase
    ]
    for cert_path, key_path, name in cases:
        config = tls_sim_config(cert_path, key_path)
        with pytest.raises(ConfigError) as error:  # through the thread helper tests use
            SimulatorThread(config).start()
        assert error.value.key == name, (cert_path, key_path, error.value)
        args = ["--port", "0", "--tls-cert", str(cert_path), "--tls-key", str(key_path)]
        assert cli_main(args) == 2
        assert f"error: {name}: " in capsys.readouterr().err


def test_relative_tls_paths_in_a_config_file_are_relative_to_that_file(
    tmp_path: Path, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = certs["smsc"]
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "cert.pem").write_bytes(cert.read_bytes())
    path = tmp_path / "sim.toml"
    path.write_text(f'[server]\nport = 0\ntls_cert = "tls/cert.pem"\ntls_key = "{key}"\n')
    config = load_config(path)
    assert config.tls_cert == str(tmp_path / "tls" / "cert.pem")
    assert config.tls_key == str(key)  # absolute: unchanged
    with SimulatorThread(config) as sim:
        tls_bind(sim.port, cert, "localhost").sock.close()
