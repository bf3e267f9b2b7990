"""GSM 7-bit default alphabet and its extension table (3GPP TS 23.038 section 6.2.1).

Septets are handled either unpacked (one septet per octet, as SMPP carriers send data_coding 0)
or packed into octets least significant bit first (TS 23.038 section 6.1.2.1).
"""

from __future__ import annotations

ESCAPE = 0x1B
"""Escape to the extension table; an extension character costs two septets."""

_BASE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_EXTENSION = {
    0x0A: "\f",  # page break
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
_ENCODE: dict[str, bytes] = {ch: bytes([code]) for code, ch in enumerate(_BASE) if code != ESCAPE}
_ENCODE.update({ch: bytes([ESCAPE, code]) for code, ch in _EXTENSION.items()})
# str.translate tables, so whole strings are mapped in C rather than a character at a time:
# one maps each character to its septets (as Latin-1 code points), the other deletes every
# representable character, leaving exactly the ones GSM 03.38 cannot carry.
_TO_SEPTETS = {ord(ch): septets.decode("latin-1") for ch, septets in _ENCODE.items()}
_DELETE_ENCODABLE = dict.fromkeys(map(ord, _ENCODE))
# Most text is Latin-1 made only of base-table characters: then bytes.translate with 256-entry
# tables (several times faster than str.translate with dicts) finds and maps it.
# Characters outside that set map to 0xFF, which no septet is: one translate, then one search.
_NOT_SINGLE = 0xFF
_LATIN1_TO_SEPTET = bytes(
    _ENCODE[chr(c)][0] if len(_ENCODE.get(chr(c), b"")) == 1 else _NOT_SINGLE for c in range(256)
)


class TextEncodeError(ValueError):
    """A character that the target encoding cannot represent."""

    def __init__(self, char: str, position: int, encoding: str) -> None:
        self.char = char
        self.position = position
        self.encoding = encoding
        super().__init__(
            f"{char!r} (U+{ord(char):04X}) at position {position} is not representable in "
            f"{encoding}"
        )

    def __reduce__(self) -> tuple[type[TextEncodeError], tuple[str, int, str]]:  # for pickling
        return (type(self), (self.char, self.position, self.encoding))


class TextDecodeError(ValueError):
    """A payload that is not valid in the encoding its data_coding announces."""


def can_encode(text: str) -> bool:
    return not text.translate(_DELETE_ENCODABLE)


def septet_count(text: str) -> int:
    """Septets needed for text; extension characters count two."""
    return len(encode_unpacked(text))


def encode_unpacked(text: str) -> bytes:
    """Text to septets, one per octet; extension characters become ESCAPE + code."""
    try:
        latin1 = text.encode("latin-1")
    except UnicodeEncodeError:
        pass
    else:
        septets = latin1.translate(_LATIN1_TO_SEPTET)
        if _NOT_SINGLE not in septets:
            return septets
    unencodable = text.translate(_DELETE_ENCODABLE)
    if unencodable:
        ch = unencodable[0]
        raise TextEncodeError(ch, text.index(ch), "GSM 03.38")
    return text.translate(_TO_SEPTETS).encode("latin-1")


def decode_unpacked(data: bytes) -> str:
    """Septets, one per octet, to text.

    As TS 23.038 requires of a receiver: an escape followed by a code the extension table does
    not define shows the base table character of that code, and the reserved escape-escape
    sequence as well as an escape that ends the data (one the receiver cannot interpret) show a
    space.
    """
    for position, octet in enumerate(data):
        if octet > 0x7F:
            raise TextDecodeError(f"octet 0x{octet:02X} at position {position} is not a septet")
    chars: list[str] = []
    i = 0
    while i < len(data):
        code = data[i]
        if code != ESCAPE:
            chars.append(_BASE[code])
            i += 1
        elif i + 1 == len(data) or data[i + 1] == ESCAPE:
            chars.append(" ")
            i += 2
        else:
            chars.append(_EXTENSION.get(data[i + 1], _BASE[data[i + 1]]))
            i += 2
    return "".join(chars)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets into octets, least significant bit first.

    fill_bits zero bits precede the first septet so that it starts on a septet boundary after a
    user data header. No septets give no octets.
    """
    _check_fill_bits(fill_bits)
    if not septets:
        return b""
    out = bytearray()
    accumulator = 0
    bits = fill_bits
    for septet in septets:
        if septet > 0x7F:
            raise ValueError(f"septet out of range: 0x{septet:02X}")
        accumulator |= septet << bits
        bits += 7
        while bits >= 8:
            out.append(accumulator & 0xFF)
            accumulator >>= 8
            bits -= 8
    if bits:
        out.append(accumulator)
    return bytes(out)


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> bytes:
    """The first count septets of packed data, after fill_bits leading fill bits."""
    _check_fill_bits(fill_bits)
    if count < 0:
        raise ValueError(f"count must not be negative, not {count}")
    if count and fill_bits + 7 * count > 8 * len(data):
        raise TextDecodeError(f"{len(data)} octets cannot hold {count} septets")
    out = bytearray()
    accumulator = 0
    bits = 0
    for index, octet in enumerate(data):
        if len(out) == count:
            break
        accumulator |= octet << bits
        bits += 8
        if index == 0:
            accumulator >>= fill_bits
            bits -= fill_bits
        while bits >= 7 and len(out) < count:
            out.append(accumulator & 0x7F)
            accumulator >>= 7
            bits -= 7
    return bytes(out)


def _check_fill_bits(fill_bits: int) -> None:
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, not {fill_bits}")
