"""The SMPP codec front: the native (Cython) codec when built, else its pure-Python twin.

``GATEWAY_PURE=1`` in the environment forces the pure-Python twin. Both give identical results.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Iterator

from gateway.smpp.constants import DEFAULT_MAX_COMMAND_LENGTH, HEADER_LENGTH
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.errors import FramingError
from gateway.smpp.pdu import Pdu

_LENGTH = struct.Struct(">I")  # command_length

log = logging.getLogger(__name__)


def _load_backend() -> tuple[str, Callable[[Pdu], bytes], Callable[[bytes], Pdu]]:
    if os.environ.get("GATEWAY_PURE", "") not in ("", "0"):
        from gateway.smpp import _pure_codec as pure

        return "pure", pure.encode_pdu, pure.decode_pdu
    try:
        from gateway.smpp import _native_codec as native  # type: ignore[attr-defined]
    except ImportError as exc:
        from gateway.smpp import _pure_codec as pure

        log.warning("native SMPP codec unavailable (%s); using the pure-Python codec", exc)
        return "pure", pure.encode_pdu, pure.decode_pdu
    return "native", native.encode_pdu, native.decode_pdu


BACKEND, encode_pdu, decode_pdu = _load_backend()


class FrameDecoder:
    """Splits a byte stream into PDUs; feed it chunks of any size.

    ``next_pdu()`` returns the next decoded PDU, None when more bytes are needed, or raises:
    - ``PduDecodeError`` for a well-framed but undecodable PDU; that frame is consumed, so the
      caller answers it (generic_nack or the command's response) and calls again;
    - ``FramingError`` when command_length is below 16 or above ``max_command_length``. That is
      decided from the first four octets, before any body is buffered; the stream cannot be
      resynchronised, so every later call raises the same error.
    """

    __slots__ = ("_buffer", "_decode", "_failed", "_max")

    def __init__(
        self,
        max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH,
        decode: Callable[[bytes], Pdu] | None = None,
    ) -> None:
        self._buffer = bytearray()
        self._max = max_command_length
        self._decode = decode or decode_pdu
        self._failed: FramingError | None = None

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_pdu(self) -> Pdu | None:
        if self._failed is not None:
            raise self._failed
        buffer = self._buffer
        if len(buffer) < 4:
            return None
        (length,) = _LENGTH.unpack_from(buffer)  # no slice copied to read four octets
        if length < HEADER_LENGTH or length > self._max:
            command_id = sequence_number = 0
            if len(buffer) >= HEADER_LENGTH:
                command_id = int.from_bytes(buffer[4:8], "big")
                sequence_number = int.from_bytes(buffer[12:16], "big")
            self._failed = FramingError(
                S.ESME_RINVCMDLEN,
                f"command_length {length} outside {HEADER_LENGTH}..{self._max}",
                command_id,
                sequence_number,
            )
            del buffer[:]
            raise self._failed
        if len(buffer) < length:
            return None
        frame = bytes(buffer[:length])
        del buffer[:length]
        return self._decode(frame)

    def __iter__(self) -> Iterator[Pdu]:
        """The PDUs complete so far (errors propagate as from next_pdu)."""
        while (pdu := self.next_pdu()) is not None:
            yield pdu
