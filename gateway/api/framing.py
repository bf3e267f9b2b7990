"""Sans-I/O framing of the socket API.

A frame is a 4-octet big-endian length N followed by N octets holding one msgpack map. The
length is checked before any body is buffered: above the limit the stream cannot be trusted any
more (we would have to skip N octets sent by a peer that is already wrong), so the reader
reports E_FRAME_TOO_LARGE and stops; the connection is closed after that reply. A well-framed
body that does not decode, or decodes to something other than a map, is consumed and reported
as E_BAD_FRAME; the next frame is read normally.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

import msgpack

from gateway.api.errors import ApiError, ErrorCode

HEADER = struct.Struct(">I")
DEFAULT_MAX_BYTES = 64 * 1024

Message = dict[str, Any]


class _Packers(threading.local):
    """One reusable Packer per thread: msgpack.packb builds a new one for every call. A Packer
    resets itself when packing fails, and is not safe to share between threads."""

    def __init__(self) -> None:
        self.packer = msgpack.Packer(use_bin_type=True)


_PACKERS = _Packers()


def encode_frame(message: Message) -> bytes:
    """One frame for `message`; raises TypeError for values msgpack cannot represent."""
    body = _PACKERS.packer.pack(message)
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> Message:
    """One frame body to a map; ApiError(E_BAD_FRAME) otherwise."""
    try:
        value = msgpack.unpackb(body, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types (ValueError, StackError...)
        raise ApiError(ErrorCode.E_BAD_FRAME, f"undecodable msgpack body: {exc}") from None
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise ApiError(ErrorCode.E_BAD_FRAME, f"frame body is a {kind}, not a map")
    return value


def _error_of(body: bytes) -> Message | ApiError:
    try:
        return decode_body(body)
    except ApiError as exc:
        return exc


class FrameReader:
    """Bytes in, decoded maps or ApiErrors out, in stream order."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self.broken = False  # set once an oversized length was seen: feed() returns nothing

    def feed(self, data: bytes) -> list[Message | ApiError]:
        if self.broken:
            return []
        out: list[Message | ApiError] = []
        if self._buf or not isinstance(data, bytes):
            self._buf += data
            pos = self._split(self._buf, out)
            if not self.broken:
                del self._buf[:pos]
        else:  # nothing buffered (the usual case): read the frames straight from `data`
            pos = self._split(data, out)
            if not self.broken:
                self._buf += data[pos:]
        return out

    def _split(self, buf: bytes | bytearray, out: list[Message | ApiError]) -> int:
        """Append the whole frames of `buf` to `out`; returns the octets consumed."""
        pos = 0
        size = len(buf)
        header = HEADER.size
        while size - pos >= header:
            (length,) = HEADER.unpack_from(buf, pos)
            if length > self.max_bytes:
                self.broken = True
                self._buf = bytearray()
                message = f"frame of {length} octets exceeds the limit of {self.max_bytes}"
                out.append(ApiError(ErrorCode.E_FRAME_TOO_LARGE, message))
                return size
            end = pos + header + length
            if size < end:
                break
            body = bytes(buf[pos + header : end])
            try:
                value = msgpack.unpackb(body, raw=False)
            except Exception:
                value = None
            # anything but a map (or an undecodable body): decode_body words the error
            out.append(value if type(value) is dict else _error_of(body))
            pos = end
        return pos

    @property
    def buffered(self) -> int:
        return len(self._buf)
