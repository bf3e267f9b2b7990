"""Simulator settings: one dataclass, loaded from TOML and command-line overrides.

Every setting has a dotted key (``receipts.fail_ratio``) used both in the TOML file (section
``[receipts]``, key ``fail_ratio``) and in error messages, so a bad value is reported by name.
Accounts are an array of tables, ``[[accounts]]``, each with system_id, password and optionally
tps and max_binds.

TLS: ``server.tls_cert`` and ``server.tls_key`` (PEM files, both or neither) make the listening
port TLS-only; ``tls_context`` reads them and reports an unreadable or unusable file as a
ConfigError naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import ssl
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.smpp.constants import DEFAULT_MAX_COMMAND_LENGTH, HEADER_LENGTH
from gateway.smpp.segmentation import SegmentMethod

ID_FORMATS = ("hex", "decimal")


class ConfigError(ValueError):
    """A setting with a bad value; ``key`` names it (``receipts.fail_ratio``, ``--tps``)."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


@dataclass(frozen=True, slots=True)
class Account:
    """An ESME account. tps None takes the simulator-wide ``throttle.tps``; 0 is unlimited."""

    system_id: str
    password: str
    tps: float | None = None
    max_binds: int = 0  # 0: unlimited


@dataclass(slots=True)
class SimConfig:
    # [server]
    host: str = "127.0.0.1"
    port: int = 2775
    smsc_system_id: str = "SMSCSIM"
    max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH
    enquire_link_interval: float = 0.0  # seconds; 0: the simulator never sends enquire_link
    seed: int | None = None  # None: a fresh random seed per run
    keep_submitted: int = 1000  # decoded submits kept for inspection; 0: none
    accounts: tuple[Account, ...] = (Account("smppclient1", "password"),)
    tls_cert: str | None = None  # PEM certificate (chain); with tls_key: the port is TLS-only
    tls_key: str | None = None  # PEM private key, unencrypted
    # [ids]
    id_format: str = "hex"
    id_uppercase: bool = False
    id_width: int = 0  # zero-pad to this many digits; 0: no padding
    id_start: int = 0x1A2B3C4D
    # [receipts]
    receipt_delay: float = 0.2
    fail_ratio: float = 0.0
    fail_error: int = 1  # err:NNN and network_error_code of failed receipts
    receipt_tlvs: bool = True
    receipt_queue_limit: int = 10_000  # deliver_sm waiting per system_id; more are dropped
    # [throttle]
    tps: float = 0.0  # per system_id; 0: unlimited
    tps_burst: float = 0.0  # token bucket size; 0: max(1, tps)
    msgqful_unacked: int = 0  # answer submits ESME_RMSGQFUL at this many unacked deliver_sm
    # [latency]
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    # [faults]
    drop_ratio: float = 0.0  # chance that a received PDU makes the simulator drop the link
    # [delivery]
    deliver_window: int = 10  # unacked deliver_sm per connection
    deliver_timeout: float = 30.0  # an unacked deliver_sm is given up after this many seconds
    # [mo] periodic mobile-originated messages
    mo_interval: float = 0.0  # seconds; 0: none
    mo_text: str = "Hello from the SMSC simulator"
    mo_source_addr: str = "447700900123"
    mo_destination_addr: str = "12345"
    mo_system_id: str = ""  # "": every account
    mo_segmentation: str = SegmentMethod.UDH8.value

    def account(self, system_id: str) -> Account | None:
        return next((a for a in self.accounts if a.system_id == system_id), None)

    def replace(self, **changes: Any) -> SimConfig:
        return dataclasses.replace(self, **changes)


Validator = Callable[[str, Any], Any]


def _number(low: float, high: float) -> Validator:
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ConfigError(key, f"must be a number, not {value!r}")
        if not low <= value <= high:
            raise ConfigError(key, f"must be between {low:g} and {high:g}, not {value!r}")
        return float(value)

    return check


def _integer(low: int, high: int) -> Validator:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be an integer, not {value!r}")
        if not low <= value <= high:
            raise ConfigError(key, f"must be between {low} and {high}, not {value!r}")
        return value

    return check


def _string(max_length: int, allow_empty: bool = True) -> Validator:
    def check(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, not {value!r}")
        if not allow_empty and not value:
            raise ConfigError(key, "must not be empty")
        if len(value) > max_length:
            raise ConfigError(key, f"must be at most {max_length} characters")
        if not value.isascii() or "\0" in value:
            raise ConfigError(key, "must be printable ASCII")
        return value

    return check


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, not {value!r}")
    return value


def _choice(*choices: str) -> Validator:
    def check(key: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    return check


def _seed(key: str, value: Any) -> int | None:
    return None if value is None else _integer(0, 2**63 - 1)(key, value)


def _path(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\0" in value:
        raise ConfigError(key, f"must be a non-empty file path, not {value!r}")
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, f"must be a non-empty string, not {value!r}")
    return value


_DAY = 86_400.0

# dotted key -> (SimConfig attribute, validator)
SCHEMA: dict[str, tuple[str, Validator]] = {
    "server.host": ("host", _string(255, allow_empty=False)),
    "server.port": ("port", _integer(0, 65535)),
    "server.system_id": ("smsc_system_id", _string(15)),
    "server.max_command_length": ("max_command_length", _integer(HEADER_LENGTH + 64, 1 << 24)),
    "server.enquire_link_interval": ("enquire_link_interval", _number(0, _DAY)),
    "server.seed": ("seed", _seed),
    "server.keep_submitted": ("keep_submitted", _integer(0, 10_000_000)),
    "server.tls_cert": ("tls_cert", _path),
    "server.tls_key": ("tls_key", _path),
    "ids.format": ("id_format", _choice(*ID_FORMATS)),
    "ids.uppercase": ("id_uppercase", _boolean),
    "ids.width": ("id_width", _integer(0, 64)),
    "ids.start": ("id_start", _integer(0, 2**63 - 1)),
    "receipts.delay": ("receipt_delay", _number(0, _DAY)),
    "receipts.fail_ratio": ("fail_ratio", _number(0, 1)),
    "receipts.fail_error": ("fail_error", _integer(0, 999)),
    "receipts.tlvs": ("receipt_tlvs", _boolean),
    "receipts.queue_limit": ("receipt_queue_limit", _integer(1, 10_000_000)),
    "throttle.tps": ("tps", _number(0, 1e9)),
    "throttle.burst": ("tps_burst", _number(0, 1e9)),
    "throttle.msgqful_unacked": ("msgqful_unacked", _integer(0, 1_000_000)),
    "latency.fixed_ms": ("latency_ms", _number(0, 600_000)),
    "latency.jitter_ms": ("jitter_ms", _number(0, 600_000)),
    "faults.drop_ratio": ("drop_ratio", _number(0, 1)),
    "delivery.window": ("deliver_window", _integer(1, 100_000)),
    "delivery.timeout": ("deliver_timeout", _number(0.001, _DAY)),
    "mo.interval": ("mo_interval", _number(0, _DAY)),
    "mo.text": ("mo_text", _text),
    "mo.source_addr": ("mo_source_addr", _string(20)),
    "mo.destination_addr": ("mo_destination_addr", _string(20)),
    "mo.system_id": ("mo_system_id", _string(15)),
    "mo.segmentation": ("mo_segmentation", _choice(*(m.value for m in SegmentMethod))),
}

_ACCOUNT_SCHEMA: dict[str, Validator] = {
    "system_id": _string(15, allow_empty=False),
    "password": _string(8),
    "tps": _number(0, 1e9),
    "max_binds": _integer(0, 1_000_000),
}


def build_config(
    data: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    base: SimConfig | None = None,
) -> SimConfig:
    """A SimConfig from parsed TOML data, then dotted-key overrides; raises ConfigError.

    Override keys are dotted keys, ``accounts`` (a sequence of Account) or any of them with a
    display name for errors: ``{"throttle.tps": (5.0, "--tps")}``.
    """
    changes: dict[str, Any] = {}
    for section, table in (data or {}).items():
        if section == "accounts":
            changes["accounts"] = _accounts(table)
            continue
        if not isinstance(table, Mapping):
            raise ConfigError(section, "must be a table ([section])")
        for name, value in table.items():
            key = f"{section}.{name}"
            if key not in SCHEMA:
                raise ConfigError(key, "unknown setting")
            attribute, check = SCHEMA[key]
            changes[attribute] = check(key, value)
    for key, value in (overrides or {}).items():
        value, label = value if isinstance(value, tuple) and len(value) == 2 else (value, key)
        if key == "accounts":
            changes["accounts"] = tuple(value)
            continue
        attribute, check = SCHEMA[key]
        changes[attribute] = check(label, value)
    config = dataclasses.replace(base or SimConfig(), **changes)
    _check_consistency(config)
    return config


def _accounts(table: Any) -> tuple[Account, ...]:
    if not isinstance(table, list) or not table:
        raise ConfigError("accounts", "must be a non-empty array of tables ([[accounts]])")
    accounts: list[Account] = []
    for index, entry in enumerate(table):
        where = f"accounts[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(where, "must be a table")
        values: dict[str, Any] = {}
        for name, value in entry.items():
            if name not in _ACCOUNT_SCHEMA:
                raise ConfigError(f"{where}.{name}", "unknown setting")
            values[name] = _ACCOUNT_SCHEMA[name](f"{where}.{name}", value)
        for required in ("system_id", "password"):
            if required not in values:
                raise ConfigError(f"{where}.{required}", "is required")
        accounts.append(Account(**values))
    return tuple(accounts)


def check_config(config: SimConfig) -> None:
    """Validate a SimConfig built in Python (SimConfig(...), replace()) as a file would be."""
    for key, (attribute, check) in SCHEMA.items():
        check(key, getattr(config, attribute))
    for index, account in enumerate(config.accounts):
        for name, check in _ACCOUNT_SCHEMA.items():
            value = getattr(account, name)
            if value is not None:
                check(f"accounts[{index}].{name}", value)
    _check_consistency(config)


def _check_consistency(config: SimConfig) -> None:
    if not config.accounts:
        raise ConfigError("accounts", "at least one account is needed")
    system_ids = [a.system_id for a in config.accounts]
    for index, system_id in enumerate(system_ids):
        if system_id in system_ids[:index]:
            raise ConfigError(f"accounts[{index}].system_id", f"duplicate {system_id!r}")
    if config.mo_system_id and config.account(config.mo_system_id) is None:
        raise ConfigError("mo.system_id", f"no account {config.mo_system_id!r}")
    if (config.tls_cert is None) != (config.tls_key is None):
        missing, given = (
            ("server.tls_key", "server.tls_cert")
            if config.tls_key is None
            else ("server.tls_cert", "server.tls_key")
        )
        raise ConfigError(missing, f"is required when {given} is set (TLS needs both)")


def tls_context(config: SimConfig) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or later), None without TLS. Raises ConfigError,
    naming server.tls_cert or server.tls_key, when a file cannot be read or used."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    contents: dict[str, bytes] = {}
    for key, path in (("server.tls_cert", config.tls_cert), ("server.tls_key", config.tls_key)):
        try:
            with open(path, "rb") as handle:
                contents[key] = handle.read()
        except OSError as exc:
            raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        # a password callback: an encrypted key fails here instead of prompting on the tty
        context.load_cert_chain(config.tls_cert, config.tls_key, password=_no_password)
    except (ssl.SSLError, OSError, ValueError, TypeError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        if b"-----BEGIN CERTIFICATE-----" not in contents["server.tls_cert"]:
            raise ConfigError("server.tls_cert", f"{config.tls_cert}: no PEM certificate") from None
        raise ConfigError(
            "server.tls_key",
            f"{config.tls_key} is not an unencrypted PEM private key matching server.tls_cert "
            f"({reason})",
        ) from None
    return context


def _no_password() -> bytes:
    raise ValueError("the private key is encrypted; an unencrypted key is needed")


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    base: SimConfig | None = None,
) -> SimConfig:
    """Read a TOML file (if any) and apply overrides. Raises ConfigError, naming the key."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(str(path), f"cannot read: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"invalid TOML: {exc}") from None
        _resolve_paths(data, Path(path).parent)
    return build_config(data, overrides, base)


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative file paths in a config file are relative to that file (as in gatewayd's)."""
    server = data.get("server")
    if not isinstance(server, dict):
        return
    for name in ("tls_cert", "tls_key"):
        value = server.get(name)
        if isinstance(value, str) and value and "\0" not in value:
            server[name] = str(base / value)  # an absolute value replaces base


__all__ = [
    "ID_FORMATS",
    "SCHEMA",
    "Account",
    "ConfigError",
    "SimConfig",
    "build_config",
    "check_config",
    "load_config",
    "tls_context",
]
