"""gatewayd: ``gatewayd --config /etc/gatewayd/gatewayd.toml``.

Start-up: load and validate the config and every carrier profile (any error: the ConfigError
line on stderr, exit 2), open the store, start one CarrierLink per profile, resend what a
previous run left unsent or unanswered (expired ones are recorded, not sent), start the
housekeeping task (every `limits.housekeeping_interval_s`: prune old events and expired
unmatched receipts), open the API listeners, print one readiness line.

Signals: SIGTERM/SIGINT close the API listeners first (no new messages), then stop every link
(in-flight answers are awaited up to STOP_DEADLINE_S, then unbind), then close the store: exit 0.
Parts still unanswered stay pending in the store and are resent at the next start. SIGHUP
reloads the carrier profiles: new carriers start, removed ones stop, changed ones restart with
their queued parts; unchanged ones keep their binds. A bad profile on reload is logged and the
running set kept; a changed profile whose link cannot be built keeps its carrier's running link.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from gateway import __version__
from gateway.api.server import ApiServer, start_from_config
from gateway.carriers.link import CarrierLink
from gateway.ops.carrier_profile import CarrierProfile, load_carrier_profiles
from gateway.ops.config import DaemonConfig, load_daemon_config, route_table
from gateway.ops.runner import run
from gateway.ops.schema import ConfigError
from gateway.service import GatewayCore
from gateway.store.sqlite_store import SqliteStore

log = logging.getLogger("gatewayd")

STOP_DEADLINE_S = 5.0
DB_NAME = "gateway.db"
EXIT_CONFIG = 2


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(config: DaemonConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if config.logging.format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.logging.level.upper())


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        profiles: dict[str, CarrierProfile],
        *,
        housekeeping_interval_s: float | None = None,
    ) -> None:
        self.config = config
        self.profiles = profiles
        self.routes = route_table(config, profiles)  # ConfigError: a route names no profile
        # None: limits.housekeeping_interval_s; tests pass a fraction of a second
        self.housekeeping_interval_s = (
            config.limits.housekeeping_interval_s
            if housekeeping_interval_s is None
            else housekeeping_interval_s
        )
        self._housekeeping: asyncio.Task[None] | None = None
        self._rerouting: asyncio.Task[None] | None = None
        self.store: SqliteStore | None = None
        self.core: GatewayCore | None = None
        self.api: ApiServer | None = None
        self._stop = asyncio.Event()
        self._reloads: asyncio.Queue[None] = asyncio.Queue()

    async def run(self) -> int:
        cfg = self.config
        cfg.store.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = SqliteStore(
            str(cfg.store.state_dir / DB_NAME),
            synchronous=cfg.store.synchronous,
            group_commit_ms=cfg.store.group_commit_ms,
            group_commit_rows=cfg.store.group_commit_rows,
        )
        try:
            links = {name: CarrierLink(p, self.store) for name, p in self.profiles.items()}
            self.core = GatewayCore(self.store, links, cfg.limits, routes=self.routes)
            for link in links.values():
                await link.start()
            await self.core.load_opt_outs()
            await self.core.resend_pending()
            self._housekeeping = asyncio.create_task(
                self.core.run_housekeeping(self.housekeeping_interval_s), name="housekeeping"
            )
            self._rerouting = asyncio.create_task(self.core.run_rerouting(), name="rerouting")
            self.api = await start_from_config(self.core, cfg.api, cfg.limits)
            self._install_signals()
            api = str(cfg.api.socket_path)
            if cfg.api.tcp_listen is not None:
                api += ",tcp:{}:{}".format(*cfg.api.tcp_listen)
            print(f"gatewayd ready: api={api}, carriers={','.join(sorted(links))}", flush=True)
            await self._serve()
        finally:
            await self._shutdown()
        return 0

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reloads.put_nowait, None)

    async def _serve(self) -> None:
        stop = asyncio.create_task(self._stop.wait())
        while not self._stop.is_set():
            reload = asyncio.create_task(self._reloads.get())
            await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
            if reload.done():
                try:
                    await self.reload()
                except Exception:  # a bug in reloading must not take every carrier down
                    log.exception("reload failed part way; carriers may be on old profiles")
            else:
                reload.cancel()

    async def reload(self) -> None:
        """SIGHUP: bring the running links in line with the profiles directory.

        A directory that does not load (any bad profile) changes nothing. A profile that loads
        but whose link cannot be built (its CA bundle went unreadable since it was read) keeps
        that carrier's running link, or leaves a new carrier out; the others are reloaded. The
        new link is built before the old one is stopped, so a refusal costs no binds."""
        assert self.core is not None and self.store is not None
        try:
            fresh = load_carrier_profiles(self.config.carrier_profiles_dir)
        except (ConfigError, OSError) as exc:
            log.error("reload refused, carriers unchanged: %s", exc)
            return
        links = self.core.links
        for name in sorted(set(links) - set(fresh)):
            leftover = await links.pop(name).stop(STOP_DEADLINE_S)
            log.info("carrier %s removed; %d parts stay pending in the store", name, len(leftover))
        for name, profile in sorted(fresh.items()):
            old = links.get(name)
            if old is not None and old.profile == profile:
                continue
            try:
                link = CarrierLink(profile, self.store)
            except Exception as exc:
                kept = "not added" if old is None else "kept on its running profile"
                detail = exc if isinstance(exc, ConfigError) else f"{profile.source}: {exc!r}"
                log.error("reload: carrier %s %s: %s", name, kept, detail)
                continue
            leftover = [] if old is None else await old.stop(STOP_DEADLINE_S)
            await link.start()
            links[name] = link  # before take_over: it rebuilds parts with this link's profile
            if leftover:
                rebuilt, kept = await self.core.take_over(link, leftover)
                log.info(
                    "carrier %s: %d queued parts rebuilt with the new profile, %d of partly sent"
                    " messages kept as built",
                    name,
                    rebuilt,
                    kept,
                )
            log.info("carrier %s %s", name, "added" if old is None else "restarted (changed)")
        self.profiles = {name: link.profile for name, link in links.items()}
        self._reload_routes(set(links))
        log.info("reload done: carriers=%s", ",".join(sorted(links)))

    def _reload_routes(self, carriers: set[str]) -> None:
        """The config file's [[routes]] and [traffic_classes] again, for these carriers; a file
        or a route that does not load keeps the running table (the other sections of the file
        are read at start only)."""
        assert self.core is not None
        try:
            fresh = load_daemon_config(self.config.source)
            routes = route_table(fresh, carriers)
        except (ConfigError, OSError) as exc:
            log.error("reload: routes unchanged: %s", exc)
            return
        self.routes = self.core.routes = routes
        log.info("reload: %d routes", len(routes.routes()))

    async def _shutdown(self) -> None:
        if self.api is not None:
            await self.api.close()
        for task in (self._housekeeping, self._rerouting):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.core is not None:
            links = list(self.core.links.values())
            leftovers = await asyncio.gather(*(lk.stop(STOP_DEADLINE_S) for lk in links))
            left = sum(map(len, leftovers))
            if left:
                log.info("stopped with %d parts unanswered; they are resent at next start", left)
            self.core.close()
        if self.store is not None:
            await self.store.aclose()
        log.info("gatewayd stopped")


def load(path: str) -> tuple[DaemonConfig, dict[str, CarrierProfile]]:
    config = load_daemon_config(path)
    profiles = load_carrier_profiles(config.carrier_profiles_dir)
    route_table(config, profiles)  # checked now: a bad route refuses the start
    return config, profiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gatewayd")
    parser.add_argument("--version", action="version", version=f"gatewayd {__version__}")
    parser.add_argument("--config", required=True, help="daemon configuration file (TOML)")
    args = parser.parse_args(argv)
    try:
        config, profiles = load(args.config)
    except ConfigError as exc:
        print(f"gatewayd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"gatewayd: {args.config}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not profiles:
        where = Path(config.carrier_profiles_dir)
        print(
            f"gatewayd: {where}: (directory): expected at least one carrier profile (*.toml)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    setup_logging(config)
    from gateway.smpp import codec

    log.info("gatewayd %s starting (SMPP codec: %s)", __version__, codec.BACKEND)
    try:
        return run(Daemon(config, profiles).run())
    except ConfigError as exc:  # a profile's CA bundle went bad between load and link start
        print(f"gatewayd: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
