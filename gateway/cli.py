"""gatewayctl: the operator's command line.

This release has the offline tools; the socket API commands (send, get, status, events) arrive
with the daemon.
"""

from __future__ import annotations

import argparse
import binascii
import json
import sys
from dataclasses import fields
from typing import Any

from gateway import __version__
from gateway.smpp import codec
from gateway.smpp.errors import PduDecodeError
from gateway.smpp.pdu import Pdu


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {f"0x{k:04x}": _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def pdu_to_dict(pdu: Pdu) -> dict[str, Any]:
    out: dict[str, Any] = {"command": pdu.command_name, "command_id": f"0x{pdu.command_id:08x}"}
    for f in fields(pdu):
        out[f.name] = _jsonable(getattr(pdu, f.name))
    return out


def _decode(args: argparse.Namespace) -> int:
    try:
        data = binascii.unhexlify("".join(args.hex.split()))
    except (binascii.Error, ValueError) as exc:
        print(f"gatewayctl: E_BAD_HEX: {exc}", file=sys.stderr)
        return 2
    try:
        pdu = codec.decode_pdu(data)
    except PduDecodeError as exc:
        print(f"gatewayctl: E_BAD_PDU: {exc}", file=sys.stderr)
        return 1
    as_dict = pdu_to_dict(pdu)
    if args.json:
        print(json.dumps(as_dict))
    else:
        width = max(map(len, as_dict))
        for key, value in as_dict.items():
            print(f"{key:<{width}}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatewayctl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gatewayctl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    decode = commands.add_parser("decode", help="decode one SMPP PDU given in hex")
    decode.add_argument("hex", help="the whole PDU, header included, as hex digits")
    decode.add_argument("--json", action="store_true", help="print one JSON object")
    decode.set_defaults(run=_decode)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
