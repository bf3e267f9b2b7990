"""Which carrier a message takes: the route table in GatewayCore (longest prefix, weights, what
can send now, traffic classes), and the daemon's config around it."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.api.errors import ApiError, ErrorCode
from gateway.api.schema import SenderKind, SendRequest
from gateway.ops.config import Limits, load_daemon_config, route_table
from gateway.ops.schema import ConfigError
from gateway.routing.routes import load_routes
from gateway.service import GatewayCore


class FakeLink:
    def __init__(self, name: str, can_send: bool = True) -> None:
        self.carrier = name
        self.health = SimpleNamespace(share=1.0 if can_send else 0.0)  # as CarrierHealth.share


def core(routes: Any, classes: Any = None, **up: bool) -> GatewayCore:
    links = {name: FakeLink(name, state) for name, state in up.items()}
    table = load_routes("gatewayd.toml", routes, classes, carriers=list(links))
    return GatewayCore(None, links, Limits(), routes=table, rng=random.Random(5))  # type: ignore[arg-type]


def request(to: str, **fields: Any) -> SendRequest:
    return SendRequest(to=to, sender="ACME", sender_kind=SenderKind.ALPHANUMERIC, **fields)


def picked(gateway: GatewayCore, to: str, **fields: Any) -> str:
    return str(gateway._pick(request(to, **fields)).carrier)


PREFIXES = [
    {"prefix": "+", "carriers": [{"carrier": "a"}]},
    {"prefix": "+44", "carriers": [{"carrier": "b"}]},
    {"prefix": "+447", "carriers": [{"carrier": "c"}]},
]


def test_the_longest_matching_prefix_wins() -> None:
    gateway = core(PREFIXES, a=True, b=True, c=True)
    assert picked(gateway, "+447700900123") == "c"
    assert picked(gateway, "+442071838750") == "b"
    assert picked(gateway, "+12025550123") == "a"


def test_carriers_share_a_route_by_weight() -> None:
    routes = [
        {
            "prefix": "+",
            "carriers": [{"carrier": "a", "weight": 80}, {"carrier": "b", "weight": 20}],
        }
    ]
    gateway = core(routes, a=True, b=True)
    counts = Counter(picked(gateway, "+447700900123") for _ in range(4000))
    assert 0.77 < counts["a"] / 4000 < 0.83


def test_a_carrier_that_cannot_send_is_passed_over_and_a_standby_takes_over() -> None:
    routes = [
        {
            "prefix": "+",
            "carriers": [
                {"carrier": "a", "weight": 80},
                {"carrier": "b", "weight": 20},
                {"carrier": "standby", "weight": 0},
            ],
        }
    ]
    assert {picked(core(routes, a=False, b=True, standby=True), "+4477") for _ in range(50)} == {
        "b"
    }
    gateway = core(routes, a=False, b=False, standby=True)
    assert {picked(gateway, "+4477") for _ in range(50)} == {"standby"}
    # nothing can send: the message waits on a carrier chosen by weight alone
    gateway = core(routes, a=False, b=False, standby=False)
    counts = Counter(picked(gateway, "+4477") for _ in range(1000))
    assert set(counts) == {"a", "b"} and counts["a"] > counts["b"]


def test_a_demoted_carrier_keeps_only_its_share_of_its_weight() -> None:
    routes = [
        {
            "prefix": "+",
            "carriers": [{"carrier": "a", "weight": 80}, {"carrier": "b", "weight": 20}],
        }
    ]
    gateway = core(routes, a=True, b=True)
    gateway.links["a"].health.share = 0.05  # type: ignore[attr-defined]  # the probe share
    counts = Counter(picked(gateway, "+4477") for _ in range(4000))
    assert 0.13 < counts["a"] / 4000 < 0.21  # 80 x 0.05 against 20: a sixth


def test_no_route_or_no_carrier_left_is_a_typed_refusal() -> None:
    gateway = core([{"prefix": "+44", "carriers": [{"carrier": "a"}]}], a=True)
    with pytest.raises(ApiError) as refused:
        picked(gateway, "+12025550123")
    assert refused.value.code == ErrorCode.E_NO_ROUTE and not refused.value.retriable
    del gateway.links["a"]  # a reload removed the route's only carrier
    gateway.links["other"] = FakeLink("other")  # type: ignore[assignment]
    with pytest.raises(ApiError) as refused:
        picked(gateway, "+447700900123")
    assert refused.value.code == ErrorCode.E_NO_ROUTE


def test_traffic_classes_are_named_in_the_table() -> None:
    routes = [{"prefix": "+", "carriers": [{"carrier": "a"}, {"carrier": "b"}]}]
    gateway = core(routes, {"otp": {"max_wait_s": 1, "prefer": "fastest"}}, a=True, b=True)
    assert picked(gateway, "+4477", traffic_class="otp") in {"a", "b"}
    with pytest.raises(ApiError) as refused:
        picked(gateway, "+4477", traffic_class="bulk")
    assert refused.value.code == ErrorCode.E_BAD_PARAMS and "traffic_class" in refused.value.message


def test_sender_pool_names_the_carrier_whatever_the_routes_say() -> None:
    gateway = core(PREFIXES, a=True, b=True, c=True)
    pooled = SendRequest(to="+447700900123", sender="a", sender_kind=SenderKind.POOL)
    assert gateway._pick(pooled).carrier == "a"


def test_without_routes_the_first_carrier_by_name_takes_all_and_the_others_stand_by() -> None:
    links = {name: FakeLink(name) for name in ("beta", "alpha")}
    gateway = GatewayCore(None, links, Limits(), rng=random.Random(1))  # type: ignore[arg-type]
    assert {picked(gateway, "+4477") for _ in range(20)} == {"alpha"}
    links["alpha"].health.share = 0.0  # no sending bind
    assert {picked(gateway, "+4477") for _ in range(20)} == {"beta"}


def test_the_daemon_config_refuses_a_route_to_a_carrier_without_a_profile(tmp_path: Path) -> None:
    path = tmp_path / "gatewayd.toml"
    path.write_text(
        '[[routes]]\nprefix = "+44"\ncarriers = [{ carrier = "a" }, { carrier = "ghost" }]\n'
        "[traffic_classes.otp]\nmax_wait_s = 1\n"
    )
    config = load_daemon_config(path)
    with pytest.raises(ConfigError) as refused:
        route_table(config, ["a"])
    assert f"{path}: routes[0].carriers[1].carrier: expected" in str(refused.value)
    table = route_table(config, ["a", "ghost"])
    assert [route.prefix for route in table.routes()] == ["+44"]
    assert table.traffic_class("otp").max_wait_s == 1
    path.write_text('[[routes]]\nprefix = "+44"\ncpaas = [{ provider = "twilio" }]\n')
    with pytest.raises(ConfigError) as refused:  # no CPaaS provider exists yet
        route_table(load_daemon_config(path), ["a"])
    assert "routes[0].cpaas[0].provider" in str(refused.value)


def test_the_documented_route_example_loads(tmp_path: Path) -> None:
    """systemd/gatewayd.toml.example's commented [[routes]] and [traffic_classes], uncommented."""
    text = (
        Path(__file__).resolve().parent.parent / "systemd" / "gatewayd.toml.example"
    ).read_text()
    start = text.index("# [[routes]]")
    lines = [line[2:] for line in text[start:].splitlines() if line.startswith("# ")]
    config = [
        line
        for line in lines
        if line.startswith(("[", "prefix", "carriers", "max_wait", "prefer", " "))
    ]
    path = tmp_path / "gatewayd.toml"
    path.write_text(text[:start] + "\n".join(config) + "\n")
    table = route_table(load_daemon_config(path), ["uk-primary", "uk-secondary"])
    assert [route.prefix for route in table.routes()] == ["+", "+44"]
    assert table.traffic_class("otp").max_wait_s == 1.0
