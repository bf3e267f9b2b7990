"""Telnyx's Messaging API (v2), sans-I/O: the request that sends one message and what each answer
means; `http_transport.HttpTransport` carries them and `delivery.deliver` retries them.

Send: `POST {base}/v2/messages` with a JSON body `from`, `to`, `text` and, for status webhooks,
`webhook_url` (a Messaging Profile may be named with `messaging_profile_id`); the API key as a
Bearer token. A 2xx answer carries the message under `data` (its `id`, and per recipient a
`status`, "queued" at first). Errors come as `{"errors": [{"code", "title", "detail"}]}`, codes
as strings: 429 and 5xx are retried (after `Retry-After` when given), other 4xx are final;
40300 ("Blocked due to STOP message": the recipient sent STOP) is an opt-out. Telnyx documents
no idempotency key for this call, so a resend after an unknown outcome is counted as a possible
duplicate, as for Twilio.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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

OPT_OUT_ERRORS = frozenset({"40300"})  # blocked: the recipient sent STOP


@dataclass(frozen=True)
class TelnyxAccount:
    api_key: str
    base_url: str = "https://api.telnyx.com"
    messaging_profile_id: str | None = None


def send_request(
    account: TelnyxAccount, to: str, sender: str, body: str, webhook_url: str | None = None
) -> HttpRequest:
    """The POST that sends `body` to `to` (E.164) from `sender` (a number or alphanumeric)."""
    payload: dict[str, Any] = {"from": sender, "to": to, "text": body}
    if webhook_url:
        payload["webhook_url"] = webhook_url
    if account.messaging_profile_id:
        payload["messaging_profile_id"] = account.messaging_profile_id
    return HttpRequest(
        method="POST",
        url=f"{account.base_url}/v2/messages",
        headers={
            "Authorization": f"Bearer {account.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
        body=json.dumps(payload, separators=(",", ":")).encode(),
    )


def send_outcome(http_status: int, headers: Mapping[str, str], body: bytes, now: float) -> Outcome:
    """What Telnyx's answer to `send_request` means."""
    data = json_object(body)
    if 200 <= http_status < 300:
        message = data.get("data")
        message_id = message.get("id") if isinstance(message, dict) else None
        if not isinstance(message_id, str) or not message_id:
            return RetryLater(None, http_status, None, "a 2xx answer without a message id")
        return Accepted(message_id, _status(message))
    code, text = _first_error(data, http_status)
    if is_retriable(http_status):
        wait = retry_after(header(headers, "Retry-After"), now)
        return RetryLater(wait, http_status, code, text)
    return Refused(http_status, code, text, opt_out=code in OPT_OUT_ERRORS)


def _status(message: dict[str, Any]) -> str:
    recipients = message.get("to")
    if isinstance(recipients, list) and recipients and isinstance(recipients[0], dict):
        return str(recipients[0].get("status") or "queued")
    return "queued"


def _first_error(data: dict[str, Any], http_status: int) -> tuple[str | None, str]:
    errors = data.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict):
        return None, f"HTTP {http_status}"
    code = first.get("code")
    words = [str(first[k]) for k in ("title", "detail") if first.get(k)]
    return (None if code is None else str(code)), ": ".join(words) or f"HTTP {http_status}"
