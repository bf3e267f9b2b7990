"""The route table: destination prefixes to carriers (weights, per-message costs), CPaaS
providers as overflow, and traffic classes. Sans-I/O. The daemon picks each message's carrier
with it (`GatewayCore`), from its config file's `[[routes]]` and `[traffic_classes]`, reloaded
on SIGHUP; without `[[routes]]`, `default_table`.

In the daemon's config file:

    [[routes]]
    prefix = "+44"                      # E.164 prefix; "+" alone is the default route
    carriers = [{ carrier = "a", weight = 80, cost = 0.0040 },
                { carrier = "b", weight = 20, cost = 0.0050 }]
    cpaas = [{ provider = "twilio", cost = 0.0079 }]

    [traffic_classes.otp]
    max_wait_s = 1.0                    # longer than this for direct capacity: CPaaS
    prefer = "fastest"                  # or "cheapest"

A destination takes the route with the longest matching prefix. Its carriers are tried in the
order `candidates` gives: the first drawn at random in proportion to weight x health share
(`CarrierHealth.share`), among those with a weight and a share above zero; the others after
it, standby carriers (weight 0) included, the healthiest (weight x share) first for a class
that prefers "fastest", the cheapest first for "cheapest". A carrier whose share is zero (no
bind) is left out.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from gateway.ops.schema import ConfigError, Verbatim, build, number, setting, string

_PREFIX = re.compile(r"\+[0-9]{0,15}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DEFAULT_CLASS = "default"
T = TypeVar("T")


@dataclass(frozen=True)
class CarrierRoute:
    carrier: str = setting(string(64, empty=False, pattern=_NAME.pattern))
    weight: float = setting(number(0, 1_000_000), 1.0)
    cost: float = setting(number(0, 1_000), 0.0)  # per message


@dataclass(frozen=True)
class ProviderRoute:
    provider: str = setting(string(64, empty=False, pattern=_NAME.pattern))
    cost: float = setting(number(0, 1_000), 0.0)  # per message


@dataclass(frozen=True)
class Route:
    prefix: str
    carriers: tuple[CarrierRoute, ...]
    providers: tuple[ProviderRoute, ...]


@dataclass(frozen=True)
class TrafficClass:
    name: str
    max_wait_s: float = 5.0
    prefer: Literal["fastest", "cheapest"] = "fastest"


class RouteTable:
    def __init__(self, routes: list[Route], classes: Mapping[str, TrafficClass]) -> None:
        self._by_prefix = {route.prefix: route for route in routes}
        self._lengths = sorted({len(p) for p in self._by_prefix}, reverse=True)
        self.classes = dict(classes)
        self.classes.setdefault(DEFAULT_CLASS, TrafficClass(DEFAULT_CLASS))

    def routes(self) -> list[Route]:
        """Every route, by prefix."""
        return [self._by_prefix[prefix] for prefix in sorted(self._by_prefix)]

    def route_for(self, destination: str) -> Route | None:
        """The route with the longest prefix of `destination` (E.164, "+" first), if any."""
        for length in self._lengths:
            route = self._by_prefix.get(destination[:length])
            if route is not None:
                return route
        return None

    def traffic_class(self, name: str | None) -> TrafficClass:
        found = self.classes.get(name or DEFAULT_CLASS)
        if found is None:
            raise KeyError(f"no traffic class {name!r}")
        return found

    def candidates(
        self,
        route: Route,
        traffic_class: TrafficClass,
        shares: Mapping[str, float],
        rng: random.Random,
    ) -> list[str]:
        """The route's carriers to try, in order (see the module docstring)."""
        up = [
            (c, c.weight * shares.get(c.carrier, 0.0))
            for c in route.carriers
            if shares.get(c.carrier, 0.0) > 0
        ]
        total = sum(weight for _, weight in up)
        if total <= 0:  # only standby carriers (weight 0) are up: the cheapest or healthiest
            return [c.carrier for c, _ in self._ordered(up, traffic_class)]
        draw = rng.random() * total
        first = next(c for c, w in up if w > 0)
        for carrier, weight in up:
            if weight > 0 and draw < weight:
                first = carrier
                break
            draw -= weight
        rest = self._ordered([(c, w) for c, w in up if c is not first], traffic_class)
        return [first.carrier, *(c.carrier for c, _ in rest)]

    def first(
        self,
        route: Route,
        traffic_class: TrafficClass,
        shares: Mapping[str, float],
        rng: random.Random,
    ) -> str | None:
        """`candidates(...)[0]` (None for an empty list), drawn the same way from `rng`,
        without ordering the others: the router needs only the first."""
        total = 0.0
        for c in route.carriers:
            share = shares.get(c.carrier, 0.0)
            if share > 0:
                total += c.weight * share
        if total <= 0:
            order = self.candidates(route, traffic_class, shares, rng)
            return order[0] if order else None
        draw = rng.random() * total
        first = None
        for c in route.carriers:
            share = shares.get(c.carrier, 0.0)
            if share <= 0:
                continue
            weight = c.weight * share
            if weight > 0:
                if first is None:
                    first = c.carrier
                if draw < weight:
                    return c.carrier
                draw -= weight
        return first

    @staticmethod
    def _ordered(
        carriers: list[tuple[CarrierRoute, float]], traffic_class: TrafficClass
    ) -> list[tuple[CarrierRoute, float]]:
        if traffic_class.prefer == "cheapest":
            return sorted(carriers, key=lambda item: (item[0].cost, -item[1]))
        return sorted(carriers, key=lambda item: (-item[1], item[0].cost))


def default_table(
    carriers: Collection[str], classes: Mapping[str, TrafficClass] | None = None
) -> RouteTable:
    """Without `[[routes]]`: every destination to the first carrier by name, the others as
    standby (weight 0: used, by health, only while it cannot send)."""
    names = sorted(carriers)
    routes = (
        [
            Route(
                "+",
                tuple(CarrierRoute(name, 1.0 if n == 0 else 0.0) for n, name in enumerate(names)),
                (),
            )
        ]
        if names
        else []
    )
    return RouteTable(routes, classes or {})


def load_routes(
    file: str | Path,
    routes: Any,
    classes: Any = None,
    *,
    carriers: Collection[str] | None = None,
    providers: Collection[str] | None = None,
) -> RouteTable:
    """Build the table from the config's `routes` array of tables and `traffic_classes` table;
    `carriers` and `providers`, when given, are the names a route may use. Every fault is a
    ConfigError naming the file and the key (`routes[1].carriers[0].weight`)."""
    if not isinstance(routes, list):
        raise ConfigError(file, "routes", "an array of tables ([[routes]])", routes)
    table = [
        _route(file, f"routes[{n}]", entry, carriers, providers) for n, entry in enumerate(routes)
    ]
    seen: dict[str, int] = {}
    for n, route in enumerate(table):
        if route.prefix in seen:
            raise ConfigError(
                file,
                f"routes[{n}].prefix",
                f"a prefix not used by routes[{seen[route.prefix]}]",
                route.prefix,
            )
        seen[route.prefix] = n
    if classes is None:
        classes = {}
    if not isinstance(classes, Mapping):
        raise ConfigError(file, "traffic_classes", "a table of tables", classes)
    built = {name: _class(file, name, value) for name, value in classes.items()}
    if not table and carriers is not None:  # classes alone: the default routes
        return default_table(carriers, built)
    return RouteTable(table, built)


def _route(
    file: str | Path,
    key: str,
    entry: Any,
    carriers: Collection[str] | None,
    providers: Collection[str] | None,
) -> Route:
    entry = _table(file, key, entry, {"prefix", "carriers", "cpaas"})
    prefix = entry.get("prefix")
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ConfigError(file, f"{key}.prefix", '"+" and up to 15 digits', prefix)
    direct = _list(file, f"{key}.carriers", entry.get("carriers", []))
    overflow = _list(file, f"{key}.cpaas", entry.get("cpaas", []))
    if not direct and not overflow:
        raise ConfigError(file, key, "at least one carrier or cpaas provider", entry)
    carrier_routes = []
    for n, item in enumerate(direct):
        where = f"{key}.carriers[{n}]"
        carrier = _build(CarrierRoute, file, where, item)
        _known(file, f"{where}.carrier", carrier.carrier, carriers, "carrier profile")
        carrier_routes.append(carrier)
    names = [c.carrier for c in carrier_routes]
    if len(set(names)) != len(names):
        raise ConfigError(file, f"{key}.carriers", "each carrier once", direct)
    if carrier_routes and not any(c.weight > 0 for c in carrier_routes):
        raise ConfigError(
            file, f"{key}.carriers", "a weight above 0 for one carrier at least", direct
        )
    provider_routes = []
    for n, item in enumerate(overflow):
        where = f"{key}.cpaas[{n}]"
        provider = _build(ProviderRoute, file, where, item)
        _known(file, f"{where}.provider", provider.provider, providers, "CPaaS provider")
        provider_routes.append(provider)
    return Route(prefix, tuple(carrier_routes), tuple(provider_routes))


def _class(file: str | Path, name: str, value: Any) -> TrafficClass:
    key = f"traffic_classes.{name}"
    if not _NAME.fullmatch(name):
        raise ConfigError(file, key, "a name of letters, digits, '_', '.' or '-'", name)
    value = _table(file, key, value, {"max_wait_s", "prefer"})
    wait = _number(file, f"{key}.max_wait_s", value.get("max_wait_s", 5.0), 0, 86_400)
    prefer = value.get("prefer", "fastest")
    if prefer not in ("fastest", "cheapest"):
        raise ConfigError(file, f"{key}.prefer", '"fastest" or "cheapest"', prefer)
    return TrafficClass(name, wait, prefer)


def _table(file: str | Path, key: str, value: Any, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(file, key, "a table", value)
    for name in value:
        if name not in keys:
            raise ConfigError(
                file,
                f"{key}.{name}",
                "one of the keys " + ", ".join(sorted(keys)),
                Verbatim("unknown"),
            )
    return dict(value)


def _list(file: str | Path, key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(file, key, "an array of tables", value)
    return value


def _number(file: str | Path, key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(file, key, f"a number from {low:g} to {high:g}", value)
    return float(value)


def _build(cls: type[T], file: str | Path, key: str, value: Any) -> T:
    if not isinstance(value, Mapping):
        raise ConfigError(file, key, "a table", value)
    return build(cls, file, value, key + ".")


def _known(file: str | Path, key: str, name: str, known: Collection[str] | None, what: str) -> None:
    if known is not None and name not in known:
        raise ConfigError(file, key, f"the name of a configured {what}", name)
