"""Twilio's Messages API request and the meaning of its answers (documented shapes)."""

from __future__ import annotations

import base64
import email.utils
import json
import urllib.parse

from gateway.cpaas.http_outcome import Accepted, Refused, RetryLater, retry_after
from gateway.cpaas.twilio_api import TwilioAccount, send_outcome, send_request

ACCOUNT = TwilioAccount("AC0123456789abcdef0123456789abcdef", "secret-token", "http://127.0.0.1:8")


def test_the_send_request_is_the_documented_form_post() -> None:
    request = send_request(ACCOUNT, "+447700900123", "+15005550006", "héllo & bye", "https://gw/cb")
    assert request.method == "POST"
    assert request.url == (
        "http://127.0.0.1:8/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
    )
    user, _, password = (
        base64.b64decode(request.headers["Authorization"][6:]).decode().partition(":")
    )
    assert (user, password) == (ACCOUNT.account_sid, "secret-token")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = dict(urllib.parse.parse_qsl(request.body.decode()))
    assert form == {
        "To": "+447700900123",
        "From": "+15005550006",
        "Body": "héllo & bye",
        "StatusCallback": "https://gw/cb",
    }
    service = send_request(ACCOUNT, "+447700900123", "MG123", "hi", messaging_service=True)
    assert dict(urllib.parse.parse_qsl(service.body.decode()))["MessagingServiceSid"] == "MG123"


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_answers_mean_accepted_retry_or_refused() -> None:
    ok = send_outcome(201, {}, body(sid="SM1", status="queued", error_code=None), 0.0)
    assert ok == Accepted("SM1", "queued")
    busy = send_outcome(429, {"retry-after": "7"}, body(code=20429, message="Too Many"), 0.0)
    assert busy == RetryLater(7.0, 429, "20429", "Too Many")
    down = send_outcome(503, {}, b"<html>gateway timeout</html>", 0.0)
    assert down == RetryLater(None, 503, None, "HTTP 503")
    stop = send_outcome(400, {}, body(code=21610, message="Attempt to send to unsubscribed"), 0.0)
    assert stop == Refused(400, "21610", "Attempt to send to unsubscribed", opt_out=True)
    bad = send_outcome(400, {}, body(code=21211, message="Invalid 'To' Phone Number"), 0.0)
    assert isinstance(bad, Refused) and not bad.opt_out and bad.code == "21211"
    odd = send_outcome(201, {}, b"[]", 0.0)  # no sid: not trusted as sent
    assert isinstance(odd, RetryLater)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("120", 0.0) == 120.0
    date = email.utils.formatdate(1_800_000_030, usegmt=True)
    assert retry_after(date, 1_800_000_000.0) == 30.0
    assert retry_after(email.utils.formatdate(1_000, usegmt=True), 2_000.0) == 0.0  # past
    assert retry_after("soon", 0.0) is None and retry_after(None, 0.0) is None
