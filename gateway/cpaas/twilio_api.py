"""Twilio's Messages API, sans-I/O: the request that sends one message and what each answer
means. `http_transport.HttpTransport` carries them and `delivery.deliver` retries them.

Send: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded `To`, `From`
(or `MessagingServiceSid`), `Body`, and `StatusCallback` for the status webhooks
(`twilio_webhook.py`); HTTP basic auth with the Account SID and the Auth Token. A 201 carries
the message's `sid` and `status`. Errors carry a JSON body with Twilio's `code` and `message`:
429 (code 20429, too many requests) and 5xx are retried, after `Retry-After` when given; other
4xx are final, 21610 (the recipient unsubscribed) an opt-out. The Messages API takes no
idempotency key, so a send whose outcome is unknown (a timeout, a connection lost after the
request went out) may be a duplicate if repeated: the caller counts it.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.cpaas.http_outcome import (
    Accepted,
    HttpRequest,
    Outcome,
    Refused,
    RetryLater,
    header,
    is_retriable,
    json_object,
    retry_after,
)
from gateway.cpaas.twilio_webhook import OPT_OUT_ERRORS


@dataclass(frozen=True)
class TwilioAccount:
    account_sid: str
    auth_token: str
    base_url: str = "https://api.twilio.com"


def send_request(
    account: TwilioAccount,
    to: str,
    sender: str,
    body: str,
    status_callback: str | None = None,
    *,
    messaging_service: bool = False,
) -> HttpRequest:
    """The POST that sends `body` to `to` (E.164) from `sender` (a number, or with
    `messaging_service` a Messaging Service SID)."""
    form = {"To": to, "MessagingServiceSid" if messaging_service else "From": sender, "Body": body}
    if status_callback:
        form["StatusCallback"] = status_callback
    sid = urllib.parse.quote(account.account_sid, safe="")
    credentials = f"{account.account_sid}:{account.auth_token}".encode()
    return HttpRequest(
        method="POST",
        url=f"{account.base_url}/2010-04-01/Accounts/{sid}/Messages.json",
        headers={
            "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        body=urllib.parse.urlencode(form).encode("ascii"),
    )


def send_outcome(http_status: int, headers: Mapping[str, str], body: bytes, now: float) -> Outcome:
    """What Twilio's answer to `send_request` means."""
    data = json_object(body)
    if 200 <= http_status < 300:
        sid = data.get("sid")
        if not isinstance(sid, str) or not sid:
            return RetryLater(None, http_status, None, "a 2xx answer without a message sid")
        return Accepted(sid, str(data.get("status", "queued")))
    code = data.get("code")
    code_text = None if code is None else str(code)
    message = str(data.get("message") or f"HTTP {http_status}")
    if is_retriable(http_status):
        wait = retry_after(header(headers, "Retry-After"), now)
        return RetryLater(wait, http_status, code_text, message)
    return Refused(http_status, code_text, message, opt_out=code_text in OPT_OUT_ERRORS)
