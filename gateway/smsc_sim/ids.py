"""Message ids as SMSCs hand them out: unique, hexadecimal or decimal."""

from __future__ import annotations

MAX_ID_LENGTH = 64  # message_id is a C-Octet string of at most 65 octets


class MessageIdGenerator:
    """Consecutive numbers from ``start``, rendered in ``id_format`` ("hex" or "decimal").

    Consecutive numbers make every id unique for the life of the simulator; width zero-pads.
    """

    __slots__ = ("_next", "_template")

    def __init__(
        self, id_format: str = "hex", start: int = 1, width: int = 0, uppercase: bool = False
    ) -> None:
        if id_format == "hex":
            spec = "X" if uppercase else "x"
        elif id_format == "decimal":
            spec = "d"
        else:
            raise ValueError(f"unknown id format {id_format!r}")
        self._template = f"{{:0{width}{spec}}}"
        self._next = start

    def next_id(self) -> str:
        value = self._next
        self._next += 1
        message_id = self._template.format(value)
        if len(message_id) > MAX_ID_LENGTH:
            raise OverflowError("message id space exhausted")
        return message_id
