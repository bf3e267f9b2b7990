"""The daemon's own configuration (``gatewayd --config /etc/gatewayd/gatewayd.toml``).

Validated in full at start: the daemon refuses to start on any error rather than half-start.
Relative paths are resolved against the directory of the config file, so a config and its
carrier_profiles/ can move together. systemd/gatewayd.toml.example documents every key.
"""

# setting() returns a dataclasses.Field, which RUF009 cannot see through.

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gateway.ops.schema import (
    MISSING,
    ConfigError,
    Invalid,
    Verbatim,
    build,
    choice,
    integer,
    list_of,
    read_toml,
    setting,
    string,
)
from gateway.routing.routes import RouteTable, load_routes

_PATH = string(4096, empty=False, ascii=False)
_ID_LIST = list_of(integer(0, 2**32 - 2), "user or group ids (integers)")


def _socket_mode(value: Any) -> int:
    # A string, because TOML integers are decimal unless written 0o660: `660` would silently
    # mean 0o1224. Writable by others would hand the API to every local user.
    expected = 'an octal mode string like "0660", not writable by others'
    if not isinstance(value, str) or not re.fullmatch(r"0?[0-7]{3}", value):
        raise Invalid(expected)
    mode = int(value, 8)
    if mode & 0o002:
        raise Invalid(expected)
    return mode


def _listen(value: Any) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``."""
    expected = 'an address like "127.0.0.1:8740" or "[::1]:8740"'
    if not isinstance(value, str):
        raise Invalid(expected)
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9.-]+):(\d{1,5})", value)
    if not match:
        raise Invalid(expected)
    host = match[1] or match[3]
    port = int(match[2] or match[4])
    if not 1 <= port <= 65535:
        raise Invalid(expected)
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Api:
    socket_path: Path = setting(_PATH, Path("/run/gatewayd/api.sock"))
    socket_mode: int = setting(_socket_mode, 0o660)
    # peers (SO_PEERCRED) allowed on the socket besides the daemon's own uid; empty: only it
    allowed_uids: tuple[int, ...] = setting(_ID_LIST, ())
    allowed_gids: tuple[int, ...] = setting(_ID_LIST, ())
    tcp_listen: tuple[str, int] | None = setting(_listen, None)  # None: Unix socket only
    tcp_token: str | None = setting(string(256, empty=False, pattern=r"\S{16,}"), None)
    tls_cert: Path | None = setting(_PATH, None)
    tls_key: Path | None = setting(_PATH, None)


@dataclass(frozen=True, slots=True)
class Store:
    state_dir: Path = setting(_PATH, Path("/var/lib/gatewayd"))
    # SQLite runs in WAL mode. "normal": a commit survives the process crashing or being
    # killed (kill -9, OOM) but the last transactions may be lost on power loss or a kernel
    # panic; "full" fsyncs every commit and survives both, at the cost of an fsync per group
    # commit. "normal" is the default because group commits already amortise the fsync that
    # matters (the WAL checkpoint) and most deployments fear crashes more than power cuts.
    synchronous: Literal["normal", "full"] = setting(choice("normal", "full"), "normal")
    group_commit_ms: int = setting(integer(0, 1000), 0)  # 0: commit once the queue is drained
    group_commit_rows: int = setting(integer(1, 100_000), 256)


@dataclass(frozen=True, slots=True)
class Limits:
    queue_max: int = setting(integer(1, 100_000_000), 1_000_000)  # messages waiting, all carriers
    frame_max_bytes: int = setting(integer(64, 16 * 1024 * 1024), 64 * 1024)  # API frames
    event_retention_s: int = setting(integer(60, 366 * 86_400), 7 * 86_400)
    # how often the daemon prunes the event log and expired unmatched receipts
    housekeeping_interval_s: int = setting(integer(1, 86_400), 300)


@dataclass(frozen=True, slots=True)
class Logging:
    level: Literal["debug", "info", "warning", "error"] = setting(
        choice("debug", "info", "warning", "error"), "info"
    )
    format: Literal["json", "text"] = setting(choice("json", "text"), "text")


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    carrier_profiles_dir: Path = setting(_PATH, Path("carrier_profiles"))
    api: Api = dataclasses.field(default_factory=Api)
    store: Store = dataclasses.field(default_factory=Store)
    limits: Limits = dataclasses.field(default_factory=Limits)
    logging: Logging = dataclasses.field(default_factory=Logging)
    source: str = dataclasses.field(default="", compare=False)  # the file it came from
    # The file's [[routes]] and [traffic_classes] as read: checked against the carrier
    # profiles by `route_table` (gateway.routing.routes builds and validates them).
    routes: Any = dataclasses.field(default=None, compare=False)
    traffic_classes: Any = dataclasses.field(default=None, compare=False)


def load_daemon_config(path: str | Path) -> DaemonConfig:
    """Load and fully validate the daemon config; raises ConfigError naming file and key."""
    data = read_toml(path)
    routes, classes = data.pop("routes", None), data.pop("traffic_classes", None)
    config = build(DaemonConfig, path, data)
    config = dataclasses.replace(config, routes=routes, traffic_classes=classes)
    _check_api(path, config.api)
    base = Path(path).resolve().parent
    api = dataclasses.replace(
        config.api,
        socket_path=_resolve(base, config.api.socket_path),
        tls_cert=config.api.tls_cert and _resolve(base, config.api.tls_cert),
        tls_key=config.api.tls_key and _resolve(base, config.api.tls_key),
    )
    store = dataclasses.replace(config.store, state_dir=_resolve(base, config.store.state_dir))
    return dataclasses.replace(
        config,
        carrier_profiles_dir=_resolve(base, config.carrier_profiles_dir),
        api=api,
        store=store,
        source=str(path),
    )


def _resolve(base: Path, value: str | Path) -> Path:
    return base / Path(value)  # an absolute value replaces base


def _check_api(path: str | Path, api: Api) -> None:
    """Rules between keys, each reported on the key that has to change."""
    if (api.tls_cert is None) != (api.tls_key is None):
        key, other = ("tls_key", "tls_cert") if api.tls_key is None else ("tls_cert", "tls_key")
        raise ConfigError(path, f"api.{key}", f"a path, as api.{other} is set", MISSING)
    if api.tcp_listen is None:
        for key in ("tcp_token", "tls_cert"):
            if getattr(api, key) is not None:
                expected = "to be set only with api.tcp_listen"
                raise ConfigError(path, f"api.{key}", expected, Verbatim("a value"))
        return
    if api.tcp_token is None:
        raise ConfigError(path, "api.tcp_token", "a token, as api.tcp_listen is set", MISSING)
    host = api.tcp_listen[0]
    if api.tls_cert is None and not _is_loopback(host):
        # the token would cross the network in clear text
        expected = f"a certificate, as api.tcp_listen ({host}) is not loopback"
        raise ConfigError(path, "api.tls_cert", expected, MISSING)


def route_table(config: DaemonConfig, carriers: Collection[str]) -> RouteTable:
    """The config's route table for these carrier profiles; ConfigError (file, key) when a
    route is malformed or names a carrier that has no profile. No CPaaS provider exists yet,
    so a `cpaas` entry is refused by name."""
    if config.routes is None:
        return load_routes(config.source, [], config.traffic_classes, carriers=carriers)
    return load_routes(
        config.source, config.routes, config.traffic_classes, carriers=carriers, providers=()
    )
