"""Twilio status callbacks: the signature (Twilio's published example), replays, statuses."""

from __future__ import annotations

import pytest

from gateway.cpaas.twilio_webhook import (
    BadCallback,
    ReplayGuard,
    signature,
    status_update,
    valid_signature,
)

# Twilio's documented example: Auth Token 12345
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
EXPECTED = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_the_published_example_signs_as_twilio_does() -> None:
    assert signature("12345", URL, PARAMS) == EXPECTED
    assert valid_signature("12345", URL, PARAMS, EXPECTED)


@pytest.mark.parametrize(
    ("token", "url", "params", "header"),
    [
        ("12346", URL, PARAMS, EXPECTED),  # another account's token
        ("12345", URL.replace("foo=1", "foo=2"), PARAMS, EXPECTED),  # another URL
        ("12345", URL, {**PARAMS, "Digits": "1235"}, EXPECTED),  # a changed parameter
        ("12345", URL, {**PARAMS, "Extra": "x"}, EXPECTED),  # an added one
        ("12345", URL, PARAMS, None),  # no header
        ("12345", URL, PARAMS, ""),
        ("12345", URL, PARAMS, "not base64 at all ✓"),
    ],
)
def test_forged_requests_fail(
    token: str, url: str, params: dict[str, str], header: str | None
) -> None:
    assert not valid_signature(token, url, params, header)


def test_a_repeated_parameter_signs_each_value_in_order() -> None:
    one_by_one = signature("t", "https://x", {"A": ["2", "1"], "B": "3"})
    assert one_by_one == signature("t", "https://x", {"A": ["1", "2"], "B": "3"})
    assert one_by_one != signature("t", "https://x", {"A": "12", "B": "3"})  # A1A2 is not A12


def test_replays_are_refused_and_counted_within_the_ttl_and_memory_is_bounded() -> None:
    guard = ReplayGuard(ttl_s=60, limit=3)
    assert guard.first_time("s1", 0.0)
    assert not guard.first_time("s1", 10.0) and guard.replays == 1
    assert guard.first_time("s1", 61.0)  # past the ttl: forgotten
    for n in range(10):
        assert guard.first_time(f"x{n}", 62.0)
    assert len(guard._seen) <= 3  # bounded: the oldest go first


def test_statuses_map_to_receipt_states_and_21610_is_an_opt_out() -> None:
    delivered = status_update({"MessageSid": "SM1", "MessageStatus": "delivered"})
    assert (delivered.state, delivered.final, delivered.opt_out) == ("delivered", True, False)
    assert status_update({"MessageSid": "SM1", "MessageStatus": "read"}).state == "delivered"
    sent = status_update({"SmsSid": "SM1", "SmsStatus": "sent"})
    assert (sent.state, sent.final) == ("enroute", False)
    stop = status_update({"MessageSid": "SM2", "MessageStatus": "failed", "ErrorCode": "21610"})
    assert (stop.state, stop.final, stop.error_code, stop.opt_out) == (
        "failed",
        True,
        "21610",
        True,
    )
    undelivered = status_update(
        {"MessageSid": "SM3", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    )
    assert (undelivered.state, undelivered.error_code, undelivered.opt_out) == (
        "undeliverable",
        "30003",
        False,
    )
    odd = status_update({"MessageSid": "SM4", "MessageStatus": "partially_delivered"})
    assert (odd.state, odd.final, odd.status) == ("unknown", False, "partially_delivered")
    with pytest.raises(BadCallback):
        status_update({"MessageStatus": "delivered"})
