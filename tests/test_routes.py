"""The route table: longest prefix, weighted choice by health share, fallback order, config
errors that name the key."""

from __future__ import annotations

import random
import tomllib
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ops.schema import ConfigError
from gateway.routing.routes import load_routes

CONFIG = """
[[routes]]
prefix = "+"
carriers = [{ carrier = "c", weight = 1, cost = 0.009 }]
cpaas = [{ provider = "twilio", cost = 0.0079 }]

[[routes]]
prefix = "+44"
carriers = [{ carrier = "a", weight = 80, cost = 0.0040 },
            { carrier = "b", weight = 20, cost = 0.0050 },
            { carrier = "c", weight = 0, cost = 0.0030 }]
cpaas = [{ provider = "twilio", cost = 0.0079 }, { provider = "telnyx", cost = 0.0060 }]

[[routes]]
prefix = "+447700"
cpaas = [{ provider = "telnyx", cost = 0.0060 }]

[traffic_classes.otp]
max_wait_s = 1.0
prefer = "fastest"

[traffic_classes.bulk]
max_wait_s = 600
prefer = "cheapest"
"""


def table(text: str = CONFIG) -> Any:
    data = tomllib.loads(text)
    return load_routes(
        "gw.toml",
        data["routes"],
        data.get("traffic_classes"),
        carriers={"a", "b", "c"},
        providers={"twilio", "telnyx"},
    )


def test_the_longest_prefix_wins() -> None:
    routes = table()
    assert routes.route_for("+447700900123").prefix == "+447700"  # type: ignore[union-attr]
    assert routes.route_for("+441632960000").prefix == "+44"  # type: ignore[union-attr]
    assert routes.route_for("+15550100").prefix == "+"  # type: ignore[union-attr]
    assert [p.provider for p in routes.route_for("+447700900123").providers] == ["telnyx"]  # type: ignore[union-attr]
    assert routes.traffic_class(None).name == "default"
    assert routes.traffic_class("bulk").prefer == "cheapest"
    with pytest.raises(KeyError):
        routes.traffic_class("nope")
    assert load_routes("gw.toml", []).route_for("+44") is None


def test_the_first_carrier_is_drawn_by_weight_times_health_share() -> None:
    routes = table()
    route = routes.route_for("+441632960000")
    otp = routes.traffic_class("otp")
    rng = random.Random(7)

    def firsts(shares: dict[str, float], n: int = 20_000) -> Counter[str]:
        return Counter(routes.candidates(route, otp, shares, rng)[0] for _ in range(n))

    healthy = firsts({"a": 1.0, "b": 1.0, "c": 1.0})
    assert set(healthy) == {"a", "b"}  # c has weight 0: a fallback only
    assert healthy["a"] / 20_000 == pytest.approx(0.8, abs=0.02)
    browned = firsts({"a": 0.05, "b": 1.0, "c": 1.0})  # a demoted to its probe share
    assert browned["a"] / 20_000 == pytest.approx(0.04 / 0.24, abs=0.02)
    assert firsts({"a": 0.0, "b": 1.0, "c": 1.0}) == Counter({"b": 20_000})  # a is down
    assert routes.candidates(route, otp, {}, rng) == []  # nothing up: CPaaS's turn


def test_fallbacks_follow_the_class_preference_and_leave_out_carriers_that_are_down() -> None:
    routes = table()
    route = routes.route_for("+441632960000")
    shares = {"a": 0.25, "b": 1.0, "c": 1.0}

    class First(random.Random):
        def random(self) -> float:
            return 0.0  # the first live carrier is drawn: a

    fast = routes.candidates(route, routes.traffic_class("otp"), shares, First())
    assert fast == ["a", "b", "c"]  # c's weight is 0: after b, the healthier by weight x share
    cheap = routes.candidates(route, routes.traffic_class("bulk"), shares, First())
    assert cheap == ["a", "c", "b"]  # cheapest first
    assert routes.candidates(route, routes.traffic_class("bulk"), {"a": 1.0}, First()) == ["a"]
    # only the standby carrier (weight 0) is up: it still carries the traffic
    assert routes.candidates(route, routes.traffic_class("otp"), {"c": 1.0}, First()) == ["c"]


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('routes = { prefix = "+" }', "routes", "an array of tables"),
        (
            '[[routes]]\nprefix = "44"\ncarriers = [{ carrier = "a" }]',
            "routes[0].prefix",
            "up to 15 digits",
        ),
        ('[[routes]]\nprefix = "+44"', "routes[0]", "at least one carrier"),
        (
            '[[routes]]\nprefix = "+44"\ncarriers = [{ carrier = "zz" }]',
            "routes[0].carriers[0].carrier",
            "configured carrier profile",
        ),
        (
            '[[routes]]\nprefix = "+44"\ncarriers = [{ carrier = "a", weight = -1 }]',
            "routes[0].carriers[0].weight",
            "a number from 0",
        ),
        (
            '[[routes]]\nprefix = "+44"\ncarriers = [{ carrier = "a", weight = 0 }]',
            "routes[0].carriers",
            "a weight above 0",
        ),
        (
            '[[routes]]\nprefix = "+44"\ncarriers = [{ carrier = "a" }, { carrier = "a" }]',
            "routes[0].carriers",
            "each carrier once",
        ),
        (
            '[[routes]]\nprefix = "+44"\ncarriers = [{ carrier = "a", wieght = 5 }]',
            "routes[0].carriers[0].wieght",
            "one of the keys",
        ),
        (
            '[[routes]]\nprefix = "+44"\ncpaas = [{ provider = "sms-r-us" }]',
            "routes[0].cpaas[0].provider",
            "configured CPaaS provider",
        ),
        (
            '[[routes]]\nprefix = "+1"\ncarriers = [{ carrier = "a" }]\n'
            '[[routes]]\nprefix = "+1"\ncarriers = [{ carrier = "b" }]',
            "routes[1].prefix",
            "not used by routes[0]",
        ),
        (
            '[[routes]]\nprefix = "+1"\ncarriers = [{ carrier = "a" }]\n'
            '[traffic_classes.otp]\nprefer = "soonest"',
            "traffic_classes.otp.prefer",
            '"fastest" or "cheapest"',
        ),
    ],
)
def test_config_errors_name_the_file_and_the_key(text: str, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        table(text)
    assert error.value.file == "gw.toml" and error.value.key == key
    assert expected in error.value.expected


@settings(max_examples=300, deadline=None)
@given(
    weights=st.lists(st.sampled_from([0, 0.5, 1, 20, 80]), min_size=1, max_size=4),
    shares=st.lists(st.sampled_from([0.0, 0.05, 0.25, 1.0]), min_size=4, max_size=4),
    seed=st.integers(0, 2**32),
    cheapest=st.booleans(),
)
def test_first_is_the_first_of_the_candidates_drawn_alike(
    weights: list[float], shares: list[float], seed: int, cheapest: bool
) -> None:
    names = ["a", "b", "c", "d"][: len(weights)]
    if not any(weights):
        weights[0] = 1  # a route needs one weight above 0
    routes = [
        {
            "prefix": "+",
            "carriers": [
                {"carrier": n, "weight": w, "cost": i / 100}
                for i, (n, w) in enumerate(zip(names, weights, strict=True))
            ],
        }
    ]
    built = load_routes(
        "gw.toml", routes, {"c": {"prefer": "cheapest" if cheapest else "fastest"}}, carriers=names
    )
    route = built.route_for("+4477")
    by_name = dict(zip(names, shares, strict=False))
    order = built.candidates(route, built.traffic_class("c"), by_name, random.Random(seed))
    first = built.first(route, built.traffic_class("c"), by_name, random.Random(seed))
    assert first == (order[0] if order else None)
