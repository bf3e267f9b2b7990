"""Daemon config and carrier profiles: shipped files load, every error names file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ops.carrier_profile import (
    DEFAULT_RETRIABLE,
    DEFAULT_THROTTLE,
    CarrierProfile,
    Errors,
    classify_status,
    load_carrier_profile,
    load_carrier_profiles,
)
from gateway.ops.config import load_daemon_config
from gateway.ops.schema import ConfigError
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.segmentation import SegmentMethod

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "carrier_profiles"
DAEMON_EXAMPLE = ROOT / "systemd" / "gatewayd.toml.example"

MINIMAL = """\
[connection]
host = "smsc.example.net"
port = 2775

[account]
system_id = "acme"
password = "pw"
"""


def write(tmp_path: Path, text: str, name: str = "acme.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def expect_error(load, path: Path, key: str, fragment: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(path)
    error = info.value
    assert (error.file, error.key) == (str(path), key), str(error)
    assert str(error).startswith(f"{path}: {key}: expected "), str(error)
    assert fragment in str(error), str(error)
    return error


# --- shipped files -------------------------------------------------------------------------


def test_shipped_profiles_load() -> None:
    profiles = load_carrier_profiles(PROFILES)
    assert set(profiles) == {"local-sim"}  # examples/ is documentation, not a carrier
    sim = profiles["local-sim"]
    assert (sim.connection.host, sim.connection.port) == ("127.0.0.1", 2775)
    assert (sim.account.system_id, sim.account.password) == ("gwdemo", "demo1234")
    assert sim.submit.segmentation is SegmentMethod.UDH8
    assert sim.submit.encodings == (0, 3, 8)
    assert sim.receipts.id_format == "hex"
    assert sim.source == str(PROFILES / "local-sim.toml")


def test_example_profile_sets_every_key() -> None:
    profile = load_carrier_profile(PROFILES / "examples" / "generic-smpp34.toml")
    assert profile.name == "generic-smpp34"
    assert profile.errors == Errors(retriable=(0x400,), permanent=(S.ESME_RSUBMITFAIL,))
    assert profile.classify_status(S.ESME_RSUBMITFAIL) == "permanent"
    assert profile.classify_status(0x400) == "retriable"


def test_shipped_daemon_example_loads() -> None:
    config = load_daemon_config(DAEMON_EXAMPLE)
    assert config.api.socket_path == Path("/run/gatewayd/api.sock")
    assert config.api.socket_mode == 0o660
    assert config.store.state_dir == Path("/var/lib/gatewayd")
    assert config.store.synchronous == "normal"
    assert (config.store.group_commit_ms, config.store.group_commit_rows) == (0, 256)
    assert config.carrier_profiles_dir == DAEMON_EXAMPLE.parent / "carrier_profiles"


def test_daemon_example_commented_keys_are_valid(tmp_path: Path) -> None:
    # the commented-out optional keys of the example must load once uncommented
    text = DAEMON_EXAMPLE.read_text().replace("# tcp_", "tcp_").replace("# tls_", "tls_")
    config = load_daemon_config(write(tmp_path, text, "gatewayd.toml"))
    assert config.api.tcp_listen == ("127.0.0.1", 8740)
    assert config.api.tls_key == Path("/etc/gatewayd/tls/api.key")


def test_defaults_and_name_from_stem(tmp_path: Path) -> None:
    profile = load_carrier_profile(write(tmp_path, MINIMAL))
    assert profile.name == "acme"
    assert profile.binds.mode == "transceiver" and profile.binds.count == 1
    assert profile.throughput.per_bind_tps is None
    assert profile.connection.tls is False and profile.connection.tls_ca is None


def test_daemon_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    text = 'carrier_profiles_dir = "profiles"\n[store]\nstate_dir = "state"\n'
    config = load_daemon_config(write(tmp_path, text, "gatewayd.toml"))
    assert config.carrier_profiles_dir == tmp_path / "profiles"
    assert config.store.state_dir == tmp_path / "state"


# --- carrier profile errors ----------------------------------------------------------------

PROFILE_ERRORS = [
    # wrong type
    ('[window]\nsize = "ten"', "window.size", 'expected an integer from 1 to 1000, got "ten"'),
    ("[window]\nsize = true", "window.size", "got true"),
    ("[connection2]\n", "connection2", "got unknown"),
    ("[submit]\nencodings = 8", "submit.encodings", "list of data codings"),
    ("[connection]\ntls = 1", "line 9, column 12", "Cannot declare"),  # TOML syntax
    # out of range
    ("[window]\nsize = 0", "window.size", "got 0"),
    ("[binds]\ncount = 0", "binds.count", "from 1 to 64"),
    ("[reconnect]\njitter = 1.5", "reconnect.jitter", "a number from 0 to 1, got 1.5"),
    ("[throughput]\ntps = 0", "throughput.tps", "greater than 0"),
    ("[submit]\nsource_ton = 7", "submit.source_ton", "from 0 to 6"),
    # unknown keys
    ("[window]\nsise = 10", "window.sise", "keys size, response_timeout_s, got unknown"),
    ("[windw]\nsize = 10", "windw", "got unknown"),
    # bad enums
    ('[binds]\nmode = "trx"', "binds.mode", 'one of "transceiver", "tx_rx", got "trx"'),
    ('[submit]\nsegmentation = "udh"', "submit.segmentation", '"udh8", "udh16", "sar"'),
    ("[submit]\nencodings = [0, 2]", "submit.encodings", "got [0, 2]"),
    ("[submit]\nencodings = [8, 8]", "submit.encodings", "without repeats"),
    ("[submit]\nencodings = []", "submit.encodings", "non-empty"),
    ('[receipts]\nid_format = "base36"', "receipts.id_format", '"string", got "base36"'),
    ('[errors]\nretriable = ["ESME_RNOPE"]', "errors.retriable", "ESME_R* names"),
    ("[errors]\npermanent = [0]", "errors.permanent", "got [0]"),
    # keys that contradict each other
    ("[throughput]\ntps = 5\nper_bind_tps = 6", "throughput.per_bind_tps", "at most"),
    ("[enquire_link]\ninterval_s = 5\ntimeout_s = 6", "enquire_link.timeout_s", "at most"),
    ("[reconnect]\ninitial_s = 10\nmax_s = 5", "reconnect.max_s", "at least"),
    (
        '[errors]\nretriable = [8]\npermanent = ["ESME_RSYSERR"]',
        "errors.permanent",
        'not already listed in errors.retriable, got "ESME_RSYSERR"',
    ),
]


@pytest.mark.parametrize(("extra", "key", "fragment"), PROFILE_ERRORS)
def test_profile_errors(tmp_path: Path, extra: str, key: str, fragment: str) -> None:
    expect_error(
        load_carrier_profile, write(tmp_path, MINIMAL + "\n" + extra + "\n"), key, fragment
    )


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        (
            MINIMAL.replace("port = 2775\n", ""),
            "connection.port",
            "expected an integer from 1 to 65535, got nothing",
        ),
        (MINIMAL.split("[account]")[0], "account", "expected a table, got nothing"),
        # a typo is reported as the unknown key rather than as the required one it hides
        (MINIMAL.replace("[account]", "[acount]"), "acount", "keys connection, account"),
        (MINIMAL.replace('"acme"', '"acme_sixteen_chr"'), "account.system_id", "at most 15"),
        (MINIMAL.replace('"pw"', '"ninechars"'), "account.password", "at most 8"),
        (MINIMAL.replace("port = 2775", 'port = "2775"'), "connection.port", 'got "2775"'),
        (
            "connection = 5\n[account]" + MINIMAL.split("[account]")[1],
            "connection",
            "expected a table, got 5",
        ),
        ('nmae = "x"\n' + MINIMAL, "nmae", "got unknown"),
        ('name = "a b"\n' + MINIMAL, "name", 'got "a b"'),
        (
            MINIMAL.replace("port = 2775", 'port = 2775\ntls_ca = "ca.pem"'),
            "connection.tls_ca",
            "connection.tls = true",
        ),
    ],
)
def test_profile_required_and_top_level(tmp_path: Path, text: str, key: str, fragment: str):
    expect_error(load_carrier_profile, write(tmp_path, text), key, fragment)


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[window]\nsize = = 3\n")
    error = expect_error(load_carrier_profile, path, "line 9, column 8", "expected valid TOML")
    assert error.file == str(path)


def test_missing_file(tmp_path: Path) -> None:
    expect_error(load_carrier_profile, tmp_path / "nope.toml", "(file)", "a readable file")


def test_duplicate_profile_names_name_both_files(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL, "a.toml")
    second = write(tmp_path, 'name = "a"\n' + MINIMAL, "b.toml")
    with pytest.raises(ConfigError) as info:
        load_carrier_profiles(tmp_path)
    assert (info.value.file, info.value.key) == (str(second), "name")
    assert str(info.value) == (
        f'{second}: name: expected a name not already used by {tmp_path / "a.toml"}, got "a"'
    )


def test_profiles_dir_must_exist(tmp_path: Path) -> None:
    expect_error(load_carrier_profiles, tmp_path / "none", "(directory)", "a directory")


# --- daemon config errors ------------------------------------------------------------------

DAEMON_ERRORS = [
    ('[api]\nsocket_mode = "0666"', "api.socket_mode", 'not writable by others, got "0666"'),
    ("[api]\nsocket_mode = 660", "api.socket_mode", "got 660"),
    ("[api]\nallowed_uids = [-1]", "api.allowed_uids", "user or group ids"),
    ('[api]\nsocket = "/x"', "api.socket", "got unknown"),
    ('[api]\ntcp_listen = "localhost"', "api.tcp_listen", 'got "localhost"'),
    ('[api]\ntcp_listen = "127.0.0.1:8740"', "api.tcp_token", "got nothing"),
    (
        '[api]\ntcp_listen = "0.0.0.0:8740"\ntcp_token = "0123456789abcdef"',
        "api.tls_cert",
        "not loopback",
    ),
    ('[api]\ntcp_token = "short"', "api.tcp_token", 'got "short"'),
    ('[api]\ntcp_token = "0123456789abcdef"', "api.tcp_token", "only with api.tcp_listen"),
    ('[api]\ntls_cert = "c.pem"', "api.tls_key", "as api.tls_cert is set, got nothing"),
    ('[store]\nsynchronous = "off"', "store.synchronous", 'one of "normal", "full"'),
    ("[store]\ngroup_commit_ms = -1", "store.group_commit_ms", "from 0 to 1000, got -1"),
    ("[store]\ngroup_commit_rows = 1.5", "store.group_commit_rows", "got 1.5"),
    ("[limits]\nqueue_max = 0", "limits.queue_max", "got 0"),
    ("[limits]\nframe_max_bytes = 16", "limits.frame_max_bytes", "from 64"),
    ('[logging]\nformat = "xml"', "logging.format", 'one of "json", "text", got "xml"'),
    ('[logging]\nlevel = "INFO"', "logging.level", 'got "INFO"'),
    ('carrier_profiles_dir = ""', "carrier_profiles_dir", 'got ""'),
    ("[store]\nstate_dir = [1", "end of file", "valid TOML, got Unclosed array"),
    ("[store]\nstate_dir = 1 2", "line 2, column 15", "valid TOML"),
]


@pytest.mark.parametrize(("text", "key", "fragment"), DAEMON_ERRORS)
def test_daemon_errors(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    expect_error(load_daemon_config, write(tmp_path, text + "\n", "gatewayd.toml"), key, fragment)


# --- status classification -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (S.ESME_ROK, "ok"),
        (S.ESME_RTHROTTLED, "throttle"),
        (S.ESME_RMSGQFUL, "throttle"),
        (S.ESME_RSYSERR, "retriable"),
        (S.ESME_RSUBMITFAIL, "retriable"),
        (S.ESME_RINVBNDSTS, "retriable"),
        (S.ESME_RX_T_APPN, "retriable"),
        (S.ESME_RUNKNOWNERR, "retriable"),
        (S.ESME_RINVDSTADR, "permanent"),
        (S.ESME_RINVSRCADR, "permanent"),
        (S.ESME_RINVDSTTON, "permanent"),
        (S.ESME_RINVMSGLEN, "permanent"),
        (S.ESME_RINVESMCLASS, "permanent"),
        (S.ESME_RX_P_APPN, "permanent"),
        (S.ESME_RX_R_APPN, "permanent"),
        (0x400, "permanent"),  # unknown vendor code
    ],
)
def test_classify_defaults(status: int, outcome: str) -> None:
    assert classify_status(status) == outcome


def test_classify_defaults_are_disjoint() -> None:
    assert not DEFAULT_RETRIABLE & DEFAULT_THROTTLE
    assert S.ESME_ROK not in DEFAULT_RETRIABLE | DEFAULT_THROTTLE


def test_classify_overrides(tmp_path: Path) -> None:
    text = MINIMAL + (
        '[errors]\nretriable = [0x400, "ESME_RINVDSTADR"]\npermanent = ["ESME_RSYSERR"]\n'
        "throttle = [0x401]\n"
    )
    profile = load_carrier_profile(write(tmp_path, text))
    assert isinstance(profile, CarrierProfile)
    assert profile.classify_status(0x400) == "retriable"
    assert profile.classify_status(S.ESME_RINVDSTADR) == "retriable"
    assert profile.classify_status(S.ESME_RSYSERR) == "permanent"
    assert profile.classify_status(0x401) == "throttle"
    assert profile.classify_status(S.ESME_RTHROTTLED) == "throttle"  # defaults still apply
    assert profile.classify_status(S.ESME_ROK) == "ok"
