"""gateway-smsc-sim: run the SMSC simulator until SIGINT/SIGTERM, then print its counters."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

from gateway.ops.runner import run

from .config import ID_FORMATS, Account, ConfigError, SimConfig, load_config, tls_context
from .server import SmscSimulator

PROG = "gateway-smsc-sim"

# flag dest -> dotted config key
_FLAG_KEYS = {
    "host": "server.host",
    "port": "server.port",
    "seed": "server.seed",
    "enquire_link_interval": "server.enquire_link_interval",
    "id_format": "ids.format",
    "receipt_delay": "receipts.delay",
    "fail_ratio": "receipts.fail_ratio",
    "fail_error": "receipts.fail_error",
    "tps": "throttle.tps",
    "latency_ms": "latency.fixed_ms",
    "jitter_ms": "latency.jitter_ms",
    "drop_ratio": "faults.drop_ratio",
    "mo_interval": "mo.interval",
    "tls_cert": "server.tls_cert",
    "tls_key": "server.tls_key",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="An SMPP 3.4 SMSC simulator. Command-line values override the config file.",
    )
    add = parser.add_argument
    add("--config", metavar="FILE.toml", help="TOML settings (gateway/smsc_sim/example.toml)")
    add("--host", help="listen address (default 127.0.0.1)")
    add("--port", type=int, help="listen port (default 2775; 0: any free port)")
    add("--system-id", help="account system_id (added to, or replacing, the config's)")
    add("--password", help="that account's password")
    add("--id-format", choices=ID_FORMATS, help="message id format (default hex)")
    add("--receipt-delay", type=float, metavar="SECONDS", help="delay of delivery receipts")
    add("--fail-ratio", type=float, metavar="RATIO", help="share of receipts that are UNDELIV")
    add("--fail-error", type=int, metavar="CODE", help="err:NNN of failed receipts")
    add("--tps", type=float, help="submissions per second per system_id, every account (0: off)")
    add("--latency-ms", type=float, help="fixed response latency")
    add("--jitter-ms", type=float, help="random extra response latency, up to this")
    add("--drop-ratio", type=float, metavar="RATIO", help="chance per PDU to drop the link")
    add("--seed", type=int, help="seed of every random choice (default: random)")
    add("--enquire-link-interval", type=float, metavar="SECONDS", help="send enquire_link")
    add("--mo-interval", type=float, metavar="SECONDS", help="inject an MO message this often")
    add("--tls-cert", metavar="CERT.pem", help="serve TLS only, with this cert (+ --tls-key)")
    add("--tls-key", metavar="KEY.pem", help="the certificate's unencrypted private key")
    add("--stats", choices=("table", "json"), default="table", help="counters format on exit")
    return parser


def config_from_args(args: argparse.Namespace) -> SimConfig:
    overrides: dict[str, Any] = {}
    for dest, key in _FLAG_KEYS.items():
        value = getattr(args, dest)
        if value is not None:
            overrides[key] = (value, "--" + dest.replace("_", "-"))
    config = load_config(args.config, overrides)
    if args.tps is not None:  # the flag applies to every account
        accounts = tuple(
            Account(a.system_id, a.password, None, a.max_binds) for a in config.accounts
        )
        config = config.replace(accounts=accounts)
    if args.system_id is not None or args.password is not None:
        config = config.replace(accounts=_cli_account(config, args.system_id, args.password))
    return config


def _cli_account(
    config: SimConfig, system_id: str | None, password: str | None
) -> tuple[Account, ...]:
    system_id = system_id if system_id is not None else config.accounts[0].system_id
    if not system_id or len(system_id) > 15:
        raise ConfigError("--system-id", "must be 1 to 15 characters")
    existing = config.account(system_id)
    if password is None:
        password = existing.password if existing is not None else ""
    if len(password) > 8:
        raise ConfigError("--password", "must be at most 8 characters")
    account = Account(
        system_id, password, *(() if existing is None else (existing.tps, existing.max_binds))
    )
    if config.accounts == SimConfig().accounts:  # no accounts configured: only this one
        return (account,)
    others = tuple(a for a in config.accounts if a.system_id != system_id)
    return (account, *others)


async def serve(config: SimConfig, stats: str) -> None:
    sim = SmscSimulator(config)
    await sim.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    accounts = ", ".join(a.system_id for a in config.accounts)
    tls = " (TLS)" if sim.tls else ""
    print(
        f"{PROG}: listening on {sim.host}:{sim.port}{tls} (seed {sim.seed}; accounts: {accounts})",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await sim.stop(graceful=1.0)
        print(sim.counters.to_json() if stats == "json" else sim.counters.to_table(), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = config_from_args(args)
        tls_context(config)  # unreadable TLS files: a config error now, not a traceback later
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        run(serve(config, args.stats))
    except OSError as exc:
        print(
            f"{PROG}: error: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
