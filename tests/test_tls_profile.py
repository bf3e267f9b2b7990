"""TLS settings of a carrier profile (``[connection] tls``, ``tls_ca``, ``tls_server_name``):
checked and resolved at load, certificate verification failures told apart from other connect
errors, and a SIGHUP reload that cannot build a carrier's new link keeping the running one.
Certificates are made by the openssl CLI at test time; the SMSC is the bundled simulator."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest

import gateway.daemon as daemon_module
from gateway.carriers.link import CarrierLink
from gateway.ops.carrier_profile import CarrierProfile, load_carrier_profile
from gateway.ops.config import load_daemon_config
from gateway.ops.schema import ConfigError
from gateway.service import GatewayCore
from gateway.smsc_sim import SmscSimulator
from gateway.store.sqlite_store import SqliteStore
from tests.test_tls_bind import (
    HANG_GUARD,
    PASSWORD,
    SYSTEM_ID,
    eventually,
    make_cert,
    run,
    tls_sim_config,
)

pytestmark = pytest.mark.timeout(60)

SMSC_NAME = "smsc.example.test"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """smsc/other: for 127.0.0.1 and localhost; named: for smsc.example.test only."""
    directory = tmp_path_factory.mktemp("certs")
    made = {name: make_cert(directory, name) for name in ("smsc", "other")}
    made["named"] = make_cert(directory, "named", f"DNS:{SMSC_NAME}")
    return made


def profile_text(port: int = 2775, *, connection: str = "tls = true", host: str = "127.0.0.1"):
    return f"""
[connection]
host = "{host}"
port = {port}
{connection}
[account]
system_id = "{SYSTEM_ID}"
password = "{PASSWORD}"
[window]
response_timeout_s = 5
[enquire_link]
interval_s = 5
timeout_s = 2
[reconnect]
initial_s = 0.02
max_s = 0.1
jitter = 0.0
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_carrier_profile(path)
    return info.value


async def bind_once(profile: CarrierProfile, tmp_path: Path, name: str) -> CarrierLink:
    store = SqliteStore(str(tmp_path / f"{name}.sqlite"))
    link = CarrierLink(profile, store)
    link._test_store = store  # type: ignore[attr-defined]
    await link.start()
    return link


async def close(link: CarrierLink) -> None:
    await link.stop(0.5)
    await link._test_store.aclose()  # type: ignore[attr-defined]


# -- 1. an unusable tls_ca is a config error at load ------------------------------------------


def test_unusable_tls_ca_is_a_config_error_at_load_naming_file_key_and_reason(
    tmp_path: Path,
) -> None:
    garbage = write(tmp_path / "garbage.pem", "not a PEM file\n")
    key_only = tmp_path / "key-only.pem"
    _, key = make_cert(tmp_path / "k", "k")
    key_only.write_bytes(key.read_bytes())  # a PEM file, but no certificate in it
    cases = [
        (tmp_path / "missing.pem", "No such file or directory"),
        (tmp_path, "Is a directory"),
        (garbage, "NO_CERTIFICATE_OR_CRL_FOUND"),
        (key_only, "NO_CERTIFICATE_OR_CRL_FOUND"),
    ]
    for ca, reason in cases:
        path = write(
            tmp_path / "p" / "acme.toml", profile_text(connection=f'tls = true\ntls_ca = "{ca}"')
        )
        error = load_error(path)
        assert (error.file, error.key) == (str(path), "connection.tls_ca"), str(error)
        assert str(error).startswith(f"{path}: connection.tls_ca: expected "), str(error)
        assert reason in str(error) and str(ca) in str(error), str(error)


def test_a_usable_tls_ca_and_the_system_store_load(
    tmp_path: Path, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, _ = certs["smsc"]
    path = write(tmp_path / "a.toml", profile_text(connection=f'tls = true\ntls_ca = "{cert}"'))
    assert load_carrier_profile(path).connection.tls_ca == str(cert)
    path = write(tmp_path / "b.toml", profile_text())  # tls without tls_ca: system trust store
    assert load_carrier_profile(path).connection.tls_ca is None


# -- 2. a relative tls_ca is relative to the profile file ------------------------------------


def test_relative_tls_ca_is_relative_to_the_profile_file_not_the_working_directory(
    tmp_path: Path, certs: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certs["smsc"]
    profiles = tmp_path / "profiles"
    (profiles / "ca").mkdir(parents=True)
    shutil.copy(cert, profiles / "ca" / "smsc.pem")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # as under systemd, where the working directory is /

    async def test() -> None:
        async with SmscSimulator(tls_sim_config(cert, key)) as sim:
            text = profile_text(sim.port, connection='tls = true\ntls_ca = "ca/smsc.pem"')
            profile = load_carrier_profile(write(profiles / "acme.toml", text))
            assert profile.connection.tls_ca == str(profiles / "ca" / "smsc.pem")
            link = await bind_once(profile, tmp_path, "rel")
            await link.wait_bound(timeout=HANG_GUARD)
            await close(link)

    run(test)
    # the same relative name that exists only under the working directory is not used
    (elsewhere / "ca").mkdir()
    shutil.copy(cert, elsewhere / "ca" / "other.pem")
    path = write(
        profiles / "b.toml", profile_text(connection='tls = true\ntls_ca = "ca/other.pem"')
    )
    error = load_error(path)
    assert error.key == "connection.tls_ca" and error.got == str(profiles / "ca" / "other.pem")


# -- 3. tls_ca / tls_server_name without tls report their own value --------------------------


@pytest.mark.parametrize(
    ("line", "key", "got"),
    [
        ('tls_ca = "ca.pem"', "connection.tls_ca", '"ca.pem"'),
        (f'tls_server_name = "{SMSC_NAME}"', "connection.tls_server_name", f'"{SMSC_NAME}"'),
    ],
)
def test_tls_settings_without_tls_report_the_value_given(
    tmp_path: Path, line: str, key: str, got: str
) -> None:
    path = write(tmp_path / "acme.toml", profile_text(connection=f"tls = false\n{line}"))
    error = load_error(path)
    assert error.key == key
    assert str(error) == f"{path}: {key}: expected connection.tls = true to be useful, got {got}"


@pytest.mark.parametrize(
    "value",
    ['""', "5", "true", '"https://smsc.example.test"', '"smsc.example.test:3550"', '"a b"',
     '"*.example.test"', '".example.test"', '"smsc.example.test."', '"smsc..example.test"',
     '"-smsc.example.test"', '"smsc.example.test/"', '"sms\u00e7.example.test"',
     '"' + "a" * 64 + '.example.test"'],
)  # fmt: skip
def test_bad_tls_server_name_is_refused(tmp_path: Path, value: str) -> None:
    path = write(
        tmp_path / "acme.toml", profile_text(connection=f"tls = true\ntls_server_name = {value}")
    )
    error = load_error(path)
    assert error.key == "connection.tls_server_name"
    assert "expected a DNS name or an IP address" in str(error), str(error)


def test_good_tls_server_names_load(tmp_path: Path) -> None:
    for value in (SMSC_NAME, "smsc-1.example.test", "192.0.2.7", "2001:db8::7", "localhost"):
        text = profile_text(connection=f'tls = true\ntls_server_name = "{value}"')
        profile = load_carrier_profile(write(tmp_path / "acme.toml", text))
        assert profile.connection.tls_server_name == value


# -- 5. tls_server_name: a carrier reached by IP whose certificate names a DNS name -----------


def test_tls_server_name_verifies_a_dns_only_certificate_reached_by_ip(
    tmp_path: Path, certs: dict[str, tuple[Path, Path]], caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = certs["named"]
    ca = f'tls = true\ntls_ca = "{cert}"'

    async def test() -> None:
        async with SmscSimulator(tls_sim_config(cert, key)) as sim:
            named = profile_text(sim.port, connection=f'{ca}\ntls_server_name = "{SMSC_NAME}"')
            link = await bind_once(
                load_carrier_profile(write(tmp_path / "named.toml", named)), tmp_path, "n"
            )
            await link.wait_bound(timeout=HANG_GUARD)
            assert link.counters.tls_failures == 0 and link.counters.connect_errors == 0
            await close(link)
            # the same profile without the name: the IP is checked, and the cert does not have it
            path = write(tmp_path / "by-ip.toml", profile_text(sim.port, connection=ca))
            link = await bind_once(load_carrier_profile(path), tmp_path, "ip")
            await eventually(lambda: link.counters.tls_failures >= 3)
            assert link.binds_up == 0 and link.counters.connect_errors == 0
            await close(link)
            assert sim.counters.binds_ok == 1

    with caplog.at_level(logging.WARNING, logger="gateway.carriers.link"):
        run(test)
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = error.getMessage()
    assert "mismatch" in message and "127.0.0.1" in message
    assert "connection.tls_server_name" in message and str(tmp_path / "by-ip.toml") in message


# -- 4. certificate verification failures: counted apart, said once, retried ------------------


def test_verification_failure_is_said_once_then_recovery_is_said(
    tmp_path: Path, certs: dict[str, tuple[Path, Path]], caplog: pytest.LogCaptureFixture
) -> None:
    """The carrier serves a certificate the profile's CA does not vouch for, then fixes it."""
    good_cert, good_key = certs["smsc"]
    bad_cert, bad_key = certs["other"]

    async def test() -> None:
        async with SmscSimulator(tls_sim_config(bad_cert, bad_key)) as wrong:
            port = wrong.port
            text = profile_text(port, connection=f'tls = true\ntls_ca = "{good_cert}"')
            text = text.replace("[window]", "[binds]\ncount = 2\n[window]")
            path = write(tmp_path / "acme.toml", text)
            link = await bind_once(load_carrier_profile(path), tmp_path, "v")
            await eventually(lambda: link.counters.tls_failures >= 6)
            assert link.binds_up == 0 and link.counters.connect_errors == 0
            assert wrong.counters.connections_opened == 0
        async with SmscSimulator(tls_sim_config(good_cert, good_key, port=port)) as right:
            await link.wait_bound(timeout=HANG_GUARD)
            assert right.counters.binds_ok == 2
        await close(link)

    with caplog.at_level(logging.INFO, logger="gateway.carriers.link"):
        run(test)
    records = [r for r in caplog.records if r.name == "gateway.carriers.link"]
    errors = [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors  # two binds, six failures or more: said once
    assert "connection.tls_ca" in errors[0] and str(tmp_path / "acme.toml") in errors[0]
    assert "self-signed certificate" in errors[0] and str(good_cert) in errors[0]
    assert not any(
        "connect failed" in r.getMessage() and "CERTIFICATE" in r.getMessage() for r in records
    )
    recovered = [r for r in records if "verified again" in r.getMessage()]
    assert len(recovered) == 1 and recovered[0].levelno == logging.WARNING


def test_verification_failures_are_classified_under_uvloop_too(
    tmp_path: Path, certs: dict[str, tuple[Path, Path]]
) -> None:
    """The daemon runs on uvloop when it is installed; its TLS raises the same exception."""
    uvloop = pytest.importorskip("uvloop")
    cert, key = certs["smsc"]
    stranger, _ = certs["other"]

    async def test() -> None:
        async with SmscSimulator(tls_sim_config(cert, key)) as sim:
            text = profile_text(sim.port, connection=f'tls = true\ntls_ca = "{stranger}"')
            link = await bind_once(
                load_carrier_profile(write(tmp_path / "u.toml", text)), tmp_path, "u"
            )
            await eventually(lambda: link.counters.tls_failures >= 2)
            assert link.counters.connect_errors == 0
            await close(link)

    uvloop.run(asyncio.wait_for(test(), HANG_GUARD * 2))


# -- 1. reload: a link that cannot be built keeps the carrier's running link -----------------


def test_reload_keeps_the_running_link_when_the_new_one_cannot_be_built(
    tmp_path: Path,
    certs: dict[str, tuple[Path, Path]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = certs["smsc"]
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shutil.copy(cert, profiles / "ca.pem")
    config_path = write(tmp_path / "gatewayd.toml", 'carrier_profiles_dir = "profiles"\n')
    real_load = daemon_module.load_carrier_profiles

    def load_then_lose_the_ca(directory: Path) -> dict[str, CarrierProfile]:
        fresh = real_load(directory)  # valid when read ...
        (profiles / "ca.pem").unlink()  # ... gone when the link is built
        return fresh

    async def test() -> None:
        async with SmscSimulator(tls_sim_config(cert, key)) as sim:
            connection = 'tls = true\ntls_ca = "ca.pem"'
            alpha = write(profiles / "alpha.toml", profile_text(sim.port, connection=connection))
            config = load_daemon_config(config_path)
            daemon = daemon_module.Daemon(config, daemon_module.load_carrier_profiles(profiles))
            store = daemon.store = SqliteStore(str(tmp_path / "db.sqlite"))
            links = {n: CarrierLink(p, store) for n, p in daemon.profiles.items()}
            daemon.core = GatewayCore(store, links, config.limits)
            running = links["alpha"]
            await running.start()
            await running.wait_bound(timeout=HANG_GUARD)
            # alpha changes; beta (no CA file of its own) is new
            alpha.write_text(alpha.read_text().replace("interval_s = 5", "interval_s = 4"))
            write(
                profiles / "beta.toml",
                profile_text(sim.port, connection=f'tls = true\ntls_ca = "{cert}"'),
            )
            monkeypatch.setattr(daemon_module, "load_carrier_profiles", load_then_lose_the_ca)
            await daemon.reload()
            assert daemon.core.links["alpha"] is running and running.binds_up == 1
            assert daemon.profiles["alpha"] == running.profile  # what runs, not what failed
            await daemon.core.links["beta"].wait_bound(timeout=HANG_GUARD)
            assert sim.counters.connections_closed == 0 and sim.counters.binds_ok == 2
            for link in daemon.core.links.values():
                await link.stop(0.5)
            daemon.core.close()
            await store.aclose()

    with caplog.at_level(logging.INFO, logger="gatewayd"):
        run(test)
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "alpha kept on its running profile" in error
    assert f"{profiles / 'alpha.toml'}: connection.tls_ca: expected " in error
    assert "No such file or directory" in error
