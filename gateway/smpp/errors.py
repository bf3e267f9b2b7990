"""Typed errors raised by the SMPP codec."""

from __future__ import annotations

from gateway.smpp.constants import CommandStatus


def describe(value: object) -> str:
    """repr() for error messages, safe for ints too long to print (Python caps int -> str)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    return repr(value)


class PduDecodeError(ValueError):
    """A PDU that cannot be decoded.

    Carries what a session needs to answer the peer: the command_id and sequence_number read
    from the header (0 when the header itself was unreadable) and the SMPP command_status to
    answer with (generic_nack for ESME_RINVCMDLEN / ESME_RINVCMDID, otherwise the command's own
    response with that status).
    """

    def __init__(
        self, command_status: int, reason: str, command_id: int = 0, sequence_number: int = 0
    ) -> None:
        self.command_status = command_status
        self.reason = reason
        self.command_id = command_id
        self.sequence_number = sequence_number
        try:
            status_name = CommandStatus(command_status).name
        except ValueError:
            status_name = hex(command_status)
        super().__init__(
            f"{status_name}: {reason} (command_id=0x{command_id:08x}, "
            f"sequence_number={sequence_number})"
        )

    def __reduce__(self):  # keep the fields through pickling (multiprocessing, logging)
        return (
            type(self),
            (self.command_status, self.reason, self.command_id, self.sequence_number),
        )

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__reduce__() == other.__reduce__()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash(self.__reduce__()[1])


class FramingError(PduDecodeError):
    """command_length is out of bounds: the stream has lost its framing and must be closed."""


class PduEncodeError(ValueError):
    """A PDU object whose fields cannot be put on the wire (wrong type, too long, out of range)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")

    def __reduce__(self):
        return (type(self), (self.field, self.reason))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__reduce__() == other.__reduce__()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash(self.__reduce__()[1])
