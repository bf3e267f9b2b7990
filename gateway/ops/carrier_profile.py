"""Carrier profiles: one TOML file per carrier in carrier_profiles/, validated at load.

Every carrier quirk the daemon honours lives here (bind layout, window, TPS, encodings,
segmentation, message-id format, which error codes are worth retrying), so adding a carrier is
a data change. ``load_carrier_profiles`` loads a whole directory and refuses on the first bad
file; see carrier_profiles/examples/generic-smpp34.toml for every key explained.
"""

# setting() returns a dataclasses.Field, which RUF009 cannot see through.

from __future__ import annotations

import dataclasses
import ipaddress
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gateway.ops.schema import (
    ConfigError,
    Invalid,
    boolean,
    build,
    choice,
    integer,
    list_of,
    number,
    read_toml,
    setting,
    string,
)
from gateway.smpp.constants import CommandStatus
from gateway.smpp.segmentation import SegmentMethod

Outcome = Literal["ok", "retriable", "permanent", "throttle"]

DATA_CODINGS = (0, 1, 3, 8)  # the ones gateway.smpp.text can encode
ID_FORMATS = ("hex", "decimal", "string")  # gateway.smpp.receipts.normalise_message_id
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_DNS_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")

S = CommandStatus
# Enum members read per message, as module globals (docs/ARCHITECTURE.md, "Per-message objects")
_ROK = S.ESME_ROK

# SMPP 3.4 defaults for classify_status. Anything not listed here is permanent: it is either a
# fault in the message or in our PDU (resending the same bytes fails the same way: bad
# addresses, TON/NPI, esm_class, lengths, TLVs, schedule/validity, ESME_RX_P_APPN and
# ESME_RX_R_APPN), a bind-level code that means nothing on a submit, or a vendor code we know
# nothing about; retrying those would only loop and risk a retry storm, so a carrier whose
# vendor codes are transient lists them under [errors] retriable. Response *timeouts* carry no
# status at all; the session treats them as retriable.
DEFAULT_THROTTLE: frozenset[int] = frozenset(
    {
        S.ESME_RTHROTTLED,  # we exceeded the carrier's rate: slow the whole carrier down
        S.ESME_RMSGQFUL,  # the SMSC's queue is full: same remedy, back off then resend
    }
)
DEFAULT_RETRIABLE: frozenset[int] = frozenset(
    {
        S.ESME_RSYSERR,  # an SMSC internal fault, transient by nature
        S.ESME_RINVBNDSTS,  # the bind was not ready (e.g. mid-rebind); the message is fine
        S.ESME_RSUBMITFAIL,  # generic submit failure, commonly an SMSC storage/routing hiccup
        S.ESME_RX_T_APPN,  # "temporary application error" by definition
        S.ESME_RDELIVERYFAILURE,  # onward delivery failed now; may succeed later
        S.ESME_RUNKNOWNERR,  # the SMSC's own catch-all for internal failures
    }
)


def _status_code(value: Any) -> int:
    """A non-zero command_status: an integer or an ESME_R* name from SMPP 3.4."""
    expected = "command_status codes (integers 1 to 0xFFFFFFFF or ESME_R* names)"
    if isinstance(value, str):
        member = CommandStatus.__members__.get(value)
        if member is None or member == S.ESME_ROK:
            raise Invalid(expected)
        return int(member)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 0xFFFFFFFF:
        raise Invalid(expected)
    return value


def _server_name(value: Any) -> str:
    """A DNS name or an IP address, as a certificate names the server: no scheme, port, path,
    wildcard or trailing dot."""
    expected = "a DNS name or an IP address (no scheme, port or wildcard)"
    if not isinstance(value, str) or not 0 < len(value) <= 253 or not value.isascii():
        raise Invalid(expected)
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not all(_DNS_LABEL.fullmatch(label) for label in value.split(".")):
        raise Invalid(expected)
    return value


def _segment_method(value: Any) -> SegmentMethod:
    return SegmentMethod(choice(*(m.value for m in SegmentMethod))(value))


_STATUS_LIST = list_of(_status_code, "command_status codes (integers or ESME_R* names)")


@dataclass(frozen=True, slots=True)
class Connection:
    host: str = setting(string(253, empty=False))
    port: int = setting(integer(1, 65535))
    tls: bool = setting(boolean, False)
    # CA bundle (PEM) that verifies the SMSC; None: the system's trust store. A relative path is
    # relative to the profile file's directory; the loaded profile holds the resolved path.
    tls_ca: str | None = setting(string(empty=False, ascii=False), None)
    # the name the SMSC's certificate is checked against; None: host
    tls_server_name: str | None = setting(_server_name, None)
    source_address: str | None = setting(string(253, empty=False), None)  # local bind address


@dataclass(frozen=True, slots=True)
class Account:
    system_id: str = setting(string(15, empty=False))
    password: str = setting(string(8))
    system_type: str = setting(string(12), "")


@dataclass(frozen=True, slots=True)
class Binds:
    mode: Literal["transceiver", "tx_rx"] = setting(choice("transceiver", "tx_rx"), "transceiver")
    count: int = setting(integer(1, 64), 1)  # transceivers, or transmitter+receiver pairs


@dataclass(frozen=True, slots=True)
class Window:
    size: int = setting(integer(1, 1000), 10)  # unacknowledged requests per bind
    response_timeout_s: float = setting(number(0, 300, low_open=True), 30.0)


@dataclass(frozen=True, slots=True)
class Throughput:
    tps: float = setting(number(0, 100_000, low_open=True), 10.0)  # carrier-wide
    per_bind_tps: float | None = setting(number(0, 100_000, low_open=True), None)


@dataclass(frozen=True, slots=True)
class EnquireLink:
    interval_s: float = setting(number(1, 3600), 30.0)
    timeout_s: float = setting(number(0, 3600, low_open=True), 10.0)


@dataclass(frozen=True, slots=True)
class Reconnect:
    initial_s: float = setting(number(0, 3600, low_open=True), 1.0)
    max_s: float = setting(number(0, 3600, low_open=True), 60.0)
    jitter: float = setting(number(0, 1), 0.2)
    bad_credentials_delay_s: float = setting(number(0, 86_400), 300.0)


@dataclass(frozen=True, slots=True)
class Submit:
    # data_coding preference, first that represents the whole text wins
    encodings: tuple[int, ...] = setting(
        list_of(choice(*DATA_CODINGS), "data codings 0, 1, 3 or 8", nonempty=True), (0, 3, 8)
    )
    segmentation: SegmentMethod = setting(_segment_method, SegmentMethod.UDH8)
    packed: bool = setting(boolean, False)  # GSM 03.38 septets packed 8-in-7
    source_addr: str = setting(string(20), "")  # default sender; "": the client must give one
    source_ton: int = setting(integer(0, 6), 1)
    source_npi: int = setting(integer(0, 18), 1)
    dest_ton: int = setting(integer(0, 6), 1)
    dest_npi: int = setting(integer(0, 18), 1)
    registered_delivery: int = setting(integer(0, 0x1F), 1)  # 1: receipt on final outcome


@dataclass(frozen=True, slots=True)
class Receipts:
    id_format: Literal["hex", "decimal", "string"] = setting(choice(*ID_FORMATS), "hex")
    # a receipt may overtake its submit_sm_resp; how long one waits for its match
    unmatched_ttl_s: float = setting(number(1, 7 * 86_400), 600.0)


@dataclass(frozen=True, slots=True)
class Errors:
    """Per-carrier overrides of the SMPP 3.4 classification (see DEFAULT_RETRIABLE)."""

    retriable: tuple[int, ...] = setting(_STATUS_LIST, ())
    permanent: tuple[int, ...] = setting(_STATUS_LIST, ())
    throttle: tuple[int, ...] = setting(_STATUS_LIST, ())


def classify_status(status: int, errors: Errors | None = None) -> Outcome:
    """What to do about a response's command_status: carrier overrides, then SMPP 3.4."""
    if status == _ROK:
        return "ok"
    if errors is not None:
        for outcome in ("throttle", "retriable", "permanent"):
            if status in getattr(errors, outcome):
                return outcome  # type: ignore[return-value]
    if status in DEFAULT_THROTTLE:
        return "throttle"
    if status in DEFAULT_RETRIABLE:
        return "retriable"
    return "permanent"


@dataclass(frozen=True, slots=True)
class CarrierProfile:
    connection: Connection
    account: Account
    name: str = setting(string(64, empty=False, pattern=NAME_PATTERN), "")  # "": file stem
    binds: Binds = dataclasses.field(default_factory=Binds)
    window: Window = dataclasses.field(default_factory=Window)
    throughput: Throughput = dataclasses.field(default_factory=Throughput)
    enquire_link: EnquireLink = dataclasses.field(default_factory=EnquireLink)
    reconnect: Reconnect = dataclasses.field(default_factory=Reconnect)
    submit: Submit = dataclasses.field(default_factory=Submit)
    receipts: Receipts = dataclasses.field(default_factory=Receipts)
    errors: Errors = dataclasses.field(default_factory=Errors)
    source: str = dataclasses.field(default="", compare=False)  # the file it came from

    def classify_status(self, status: int) -> Outcome:
        return classify_status(status, self.errors)


def load_carrier_profile(path: str | Path) -> CarrierProfile:
    """Load and fully validate one profile; raises ConfigError naming file and key.

    A relative ``connection.tls_ca`` is resolved against the file's directory (as gatewayd's
    own paths are against its config file), and the TLS client context is built once here so
    that an unusable CA bundle is a config error at load, not a traceback at connect."""
    profile = build(CarrierProfile, path, read_toml(path))
    _check_consistency(path, profile)
    if profile.connection.tls_ca is not None:
        base = Path(path).resolve().parent
        connection = dataclasses.replace(
            profile.connection, tls_ca=str(base / profile.connection.tls_ca)
        )
        profile = dataclasses.replace(profile, connection=connection)
    tls_client_context(profile.connection, path)
    name = profile.name or Path(path).stem
    if not profile.name:
        try:
            string(64, empty=False, pattern=NAME_PATTERN)(name)
        except Invalid as exc:
            raise ConfigError(path, "name", exc.expected + " (from the file name)", name) from None
    return dataclasses.replace(profile, name=name, source=str(path))


def load_carrier_profiles(directory: str | Path) -> dict[str, CarrierProfile]:
    """Every ``*.toml`` in ``directory`` by profile name; two files with one name is an error."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(directory, "(directory)", "a directory of carrier profiles", "missing")
    profiles: dict[str, CarrierProfile] = {}
    for path in sorted(directory.glob("*.toml")):
        if path.name.startswith("."):  # editor lock and swap files
            continue
        profile = load_carrier_profile(path)
        other = profiles.get(profile.name)
        if other is not None:
            expected = f"a name not already used by {other.source}"
            raise ConfigError(path, "name", expected, profile.name)
        profiles[profile.name] = profile
    return profiles


def _check_consistency(path: str | Path, p: CarrierProfile) -> None:
    """Rules between keys, each reported on the key that has to change."""
    per_bind = p.throughput.per_bind_tps
    if per_bind is not None and per_bind > p.throughput.tps:
        expected = f"at most throughput.tps ({p.throughput.tps:g})"
        raise ConfigError(path, "throughput.per_bind_tps", expected, per_bind)
    if p.enquire_link.timeout_s > p.enquire_link.interval_s:
        expected = f"at most enquire_link.interval_s ({p.enquire_link.interval_s:g})"
        raise ConfigError(path, "enquire_link.timeout_s", expected, p.enquire_link.timeout_s)
    if p.reconnect.max_s < p.reconnect.initial_s:
        expected = f"at least reconnect.initial_s ({p.reconnect.initial_s:g})"
        raise ConfigError(path, "reconnect.max_s", expected, p.reconnect.max_s)
    if p.connection.tls_ca is not None and not p.connection.tls:
        expected = "connection.tls = true to be useful"
        raise ConfigError(path, "connection.tls_ca", expected, p.connection.tls_ca)
    if p.connection.tls_server_name is not None and not p.connection.tls:
        expected = "connection.tls = true to be useful"
        raise ConfigError(
            path, "connection.tls_server_name", expected, p.connection.tls_server_name
        )
    _check_disjoint(path, p.errors)


def tls_client_context(connection: Connection, path: str | Path) -> ssl.SSLContext | None:
    """The TLS context a bind connects with (None without ``tls``): certificate and host name
    verified, against ``tls_ca`` or the system's trust store. An unreadable or unusable CA
    bundle raises ConfigError(path, "connection.tls_ca", ...) saying what is wrong with it."""
    if not connection.tls:
        return None
    cafile = connection.tls_ca
    try:
        return ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:  # before OSError: SSLError is one
        if cafile is None:
            raise
        reason = exc.reason or exc.strerror or str(exc)
        expected = f"a PEM file of CA certificates (OpenSSL found none usable: {reason})"
        raise ConfigError(path, "connection.tls_ca", expected, cafile) from None
    except OSError as exc:
        if cafile is None:
            raise
        expected = f"a readable PEM file of CA certificates ({exc.strerror or exc})"
        raise ConfigError(path, "connection.tls_ca", expected, cafile) from None


def _check_disjoint(path: str | Path, errors: Errors) -> None:
    seen: dict[int, str] = {}
    for outcome in ("retriable", "permanent", "throttle"):
        for code in getattr(errors, outcome):
            if code in seen:
                expected = f"codes not already listed in errors.{seen[code]}"
                raise ConfigError(path, f"errors.{outcome}", expected, _status_label(code))
            seen[code] = outcome


def _status_label(code: int) -> Any:
    try:
        return CommandStatus(code).name
    except ValueError:
        return code


__all__ = [
    "DEFAULT_RETRIABLE",
    "DEFAULT_THROTTLE",
    "Account",
    "Binds",
    "CarrierProfile",
    "ConfigError",
    "Connection",
    "EnquireLink",
    "Errors",
    "Outcome",
    "Receipts",
    "Reconnect",
    "Submit",
    "Throughput",
    "Window",
    "classify_status",
    "load_carrier_profile",
    "load_carrier_profiles",
    "tls_client_context",
]
