"""What a provider's HTTP answer to a send means, whatever the provider: accepted (with the
provider's message id), to be retried later (429, 5xx: after the provider's `Retry-After` or our
own backoff), or refused for good (with the provider's code and words, verbatim). Sans-I/O.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Accepted:
    provider_id: str
    status: str  # the provider's word for the state it took the message in


@dataclass(frozen=True)
class RetryLater:
    after_s: float | None  # the provider's Retry-After, when it said one
    http_status: int
    code: str | None
    message: str


@dataclass(frozen=True)
class Refused:
    http_status: int
    code: str | None  # the provider's error code, verbatim
    message: str
    opt_out: bool  # the recipient unsubscribed: block the number


Outcome = Accepted | RetryLater | Refused


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def is_retriable(http_status: int) -> bool:
    """429 and the 5xx family: the provider may take the same request later."""
    return http_status == 429 or 500 <= http_status <= 599


def json_object(body: bytes) -> dict[str, Any]:
    """A provider's JSON answer as a dict; {} for an empty, malformed or non-object body."""
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, whatever the case of its name."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None
