"""Twilio's status callbacks, sans-I/O: the signature check, replay refusal, and what a status
means for the message (the same states as an SMPP receipt).

Signature (Twilio's documented scheme): the full URL Twilio called (scheme, host, path and query,
exactly as configured) followed by every POST parameter, sorted by name, as name + value with
no separators (a repeated name: each of its values, in sorted order); HMAC-SHA1 of that with the
account's Auth Token as the key, base64: the `X-Twilio-Signature` header. Compared in constant
time.

Replays: Twilio signs no timestamp, so a captured callback verifies again. `ReplayGuard` refuses
a callback whose signature it has seen within `ttl_s` (Twilio's own retries of one callback carry
the same parameters and signature, and are refused the same way: the first was applied). Status
changes apply idempotently besides.

Statuses: `delivered` and `read` are delivered; `undelivered` is undeliverable and `failed`
failed (final); `queued`, `accepted`, `scheduled`, `sending` and `sent` are on the way (not
final); `canceled` is final. `ErrorCode` 21610 (the recipient replied STOP to this sender:
"attempt to send to unsubscribed recipient") is an opt-out: the number is to be blocked.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SIGNATURE_HEADER = "X-Twilio-Signature"

#: Twilio error codes that say the recipient does not want messages from us
OPT_OUT_ERRORS = frozenset({"21610"})

_STATES = {
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undeliverable",
    "failed": "failed",
    "canceled": "deleted",
    "queued": "enroute",
    "accepted": "enroute",
    "scheduled": "enroute",
    "sending": "enroute",
    "sent": "enroute",
}


def signature(auth_token: str, url: str, params: Mapping[str, str | Iterable[str]]) -> str:
    """The X-Twilio-Signature Twilio sends for a POST of `params` to `url`."""
    parts = [url]
    for name in sorted(params):
        value = params[name]
        values = [value] if isinstance(value, str) else sorted(value)
        parts.extend(name + v for v in values)
    digest = hmac.new(auth_token.encode(), "".join(parts).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_signature(
    auth_token: str, url: str, params: Mapping[str, str | Iterable[str]], header: str | None
) -> bool:
    """Whether `header` is Twilio's signature of this request (False when it is missing)."""
    if not header:
        return False
    expected = signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), header.encode("utf-8", "replace"))


class ReplayGuard:
    """Signatures seen in the last `ttl_s` seconds, at most `limit` of them (the oldest go)."""

    def __init__(self, ttl_s: float = 86_400.0, limit: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()
        self.replays = 0

    def first_time(self, signature_value: str, now: float) -> bool:
        """True the first time a signature is seen; False (counted) for a replay."""
        seen = self._seen
        while seen:
            oldest, at = next(iter(seen.items()))
            if now - at < self.ttl_s and len(seen) < self.limit:
                break
            del seen[oldest]
        if signature_value in seen:
            self.replays += 1
            return False
        seen[signature_value] = now
        return True


@dataclass(frozen=True)
class StatusUpdate:
    message_sid: str
    status: str  # Twilio's word, verbatim
    state: str  # as an SMPP receipt's state: delivered, undeliverable, failed, enroute, ...
    final: bool
    error_code: str | None  # Twilio's ErrorCode, verbatim
    opt_out: bool  # the recipient does not want our messages: block the number


class BadCallback(ValueError):
    """A callback without the fields a status needs."""


def status_update(params: Mapping[str, str]) -> StatusUpdate:
    sid = params.get("MessageSid") or params.get("SmsSid")
    status = params.get("MessageStatus") or params.get("SmsStatus")
    if not sid or not status:
        raise BadCallback("a status callback needs MessageSid and MessageStatus")
    state = _STATES.get(status.lower(), "unknown")
    error = params.get("ErrorCode") or None
    return StatusUpdate(
        message_sid=sid,
        status=status,
        state=state,
        final=state not in ("enroute", "unknown"),
        error_code=error,
        opt_out=error in OPT_OUT_ERRORS,
    )
