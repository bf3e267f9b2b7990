"""Stable error codes of the socket API (docs/API.md lists them with their meaning).

The codes are a contract: clients and scripts match on them, so a code is never renamed or
reused. `retriable` tells a client whether the same request may succeed later unchanged.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.StrEnum):
    E_BAD_FRAME = "E_BAD_FRAME"  # undecodable body, not a map, or not a valid request envelope
    E_FRAME_TOO_LARGE = "E_FRAME_TOO_LARGE"  # length prefix above the limit: connection closed
    E_UNKNOWN_METHOD = "E_UNKNOWN_METHOD"
    E_BAD_PARAMS = "E_BAD_PARAMS"  # missing, unknown or mistyped field (the message names it)
    E_BAD_NUMBER = "E_BAD_NUMBER"  # a phone number or sender that is not acceptable
    E_QUEUE_FULL = "E_QUEUE_FULL"  # retriable: the queue is over its limit, nothing was stored
    E_NOT_FOUND = "E_NOT_FOUND"
    E_UNAUTHORIZED = "E_UNAUTHORIZED"  # peer not allowed, or token missing/wrong
    E_OPTED_OUT = "E_OPTED_OUT"  # the recipient opted out (a provider reported it unsubscribed)
    E_NO_ROUTE = (
        "E_NO_ROUTE"  # no route's prefix matches the destination, or none of its carriers exists
    )
    E_INTERNAL = "E_INTERNAL"
    E_CONNECTION = "E_CONNECTION"  # client side only: connect failed or connection lost


# Retriable unless the request itself has to change.
_RETRIABLE = frozenset({ErrorCode.E_QUEUE_FULL, ErrorCode.E_INTERNAL, ErrorCode.E_CONNECTION})


class ApiError(Exception):
    """An error reply: raised by validation or a service, sent as `{"error": ...}`."""

    def __init__(self, code: ErrorCode | str, message: str, retriable: bool | None = None):
        super().__init__(f"{code}: {message}")
        self.code = str(code)
        self.message = message
        self.retriable = self.code in _RETRIABLE if retriable is None else retriable

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retriable": self.retriable}

    @classmethod
    def from_wire(cls, value: Any) -> ApiError:
        if not isinstance(value, dict):
            return cls(ErrorCode.E_BAD_FRAME, f"malformed error reply: {value!r:.100}", False)
        return cls(
            str(value.get("code", ErrorCode.E_INTERNAL)),
            str(value.get("message", "")),
            bool(value.get("retriable", False)),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApiError):
            return NotImplemented
        return self.to_wire() == other.to_wire()

    def __hash__(self) -> int:
        return hash((self.code, self.message, self.retriable))

    def __repr__(self) -> str:
        return f"ApiError({self.code!r}, {self.message!r}, retriable={self.retriable})"
