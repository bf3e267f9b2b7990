"""gatewayctl: the operator's command line.

Talks to gatewayd over its API socket (--socket, else $GATEWAY_SOCKET, else
/run/gatewayd/api.sock); `decode` works offline. Exit status: 0 success, 1 the request was
refused (the error code and message are on stderr), 75 a retriable failure (queue full,
daemon unreachable: try again later), 2 usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import Any

from gateway import __version__
from gateway.api.client import DEFAULT_SOCKET, GatewayClient
from gateway.api.errors import ApiError
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


EXIT_REFUSED = 1
EXIT_RETRY = 75  # EX_TEMPFAIL


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def _emit(line: str) -> None:
    print(line, flush=True)


def _print_fields(value: Any, prefix: str = "") -> None:
    """Nested maps as `a.b  value` lines; lists of maps one JSON object a line."""
    if not isinstance(value, dict):
        _emit(f"{prefix}  {_dumps(value)}" if prefix else _dumps(value))
        return
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, dict) and item:
            _print_fields(item, name)
        elif isinstance(item, list) and item and all(isinstance(i, dict) for i in item):
            _emit(f"{name}:")
            for entry in item:
                _emit(f"  {_dumps(entry)}")
        else:
            shown = item if isinstance(item, (str, int, float)) else _dumps(item)
            _emit(f"{name}  {shown}")


async def _send(client: GatewayClient, args: argparse.Namespace) -> None:
    result = await client.send_sms(
        args.to,
        sender=args.sender,
        sender_pool=args.pool,
        text=args.text,
        validity=args.validity,
        priority=args.priority,
        idempotency_key=args.idempotency_key,
        client_ref=args.client_ref,
    )
    _emit(_dumps(result) if args.json else str(result.get("message_id")))


async def _get(client: GatewayClient, args: argparse.Namespace) -> None:
    result = await client.get_sms(args.id)
    if args.json:
        _emit(_dumps(result))
    else:
        _print_fields(result)


async def _status(client: GatewayClient, args: argparse.Namespace) -> None:
    result = await client.status()
    if args.json:
        _emit(_dumps(result))
    else:
        _print_fields(result)


def _event_line(event: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return _dumps(event)
    rest = {k: v for k, v in event.items() if k not in ("seq", "kind", "at")}
    head = " ".join(str(event[k]) for k in ("seq", "at", "kind") if k in event)
    return f"{head} {_dumps(rest)}"


async def _events(client: GatewayClient, args: argparse.Namespace) -> None:
    """Print the consumer's unacked events (then new ones with --follow), acking each once
    printed unless --no-ack: a script that dies mid-way sees the rest next time."""
    if args.follow:
        async for event in await client.subscribe(args.consumer):
            _emit(_event_line(event, args.json))
            if not args.no_ack:
                await client.ack(args.consumer, event["seq"])
        return
    after = None
    while events := await client.read_events(args.consumer, after, 100):
        for event in events:
            _emit(_event_line(event, args.json))
            if not args.no_ack:
                await client.ack(args.consumer, event["seq"])
        after = events[-1]["seq"]


async def _with_client(
    args: argparse.Namespace, action: Callable[[GatewayClient, argparse.Namespace], Awaitable[None]]
) -> None:
    async with await GatewayClient.connect(args.socket) as client:
        await action(client, args)


def _api(action: Callable[[GatewayClient, argparse.Namespace], Awaitable[None]]) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            asyncio.run(_with_client(args, action))
        except ApiError as exc:
            print(f"gatewayctl: {exc.code}: {exc.message}", file=sys.stderr)
            return EXIT_RETRY if exc.retriable else EXIT_REFUSED
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # `gatewayctl events | head`
            sys.stderr.close()
            return 0
        return 0

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatewayctl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gatewayctl {__version__}")
    socket_default = os.environ.get("GATEWAY_SOCKET") or DEFAULT_SOCKET
    parser.add_argument("--socket", default=socket_default, help="the API socket path")
    commands = parser.add_subparsers(dest="command", required=True)
    decode = commands.add_parser("decode", help="decode one SMPP PDU given in hex")
    decode.add_argument("hex", help="the whole PDU, header included, as hex digits")
    decode.add_argument("--json", action="store_true", help="print one JSON object")
    decode.set_defaults(run=_decode)

    def api_command(name: str, summary: str, action: Any) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary)
        # also accepted after the command; SUPPRESS keeps the global value when absent
        sub.add_argument("--socket", default=argparse.SUPPRESS, help="the API socket path")
        sub.add_argument("--json", action="store_true", help="print the JSON reply")
        sub.set_defaults(run=_api(action))
        return sub

    send = api_command("send", "send one SMS; prints its message id", _send)
    send.add_argument("--to", required=True, help="E.164 number with +")
    sender = send.add_mutually_exclusive_group(required=True)
    sender.add_argument("--from", dest="sender", help="E.164 number, short code or name")
    sender.add_argument("--pool", help="a sender pool instead of --from")
    send.add_argument("--text", required=True)
    send.add_argument("--validity", type=int, help="seconds")
    send.add_argument("--priority", type=int, choices=range(4))
    send.add_argument("--idempotency-key")
    send.add_argument("--client-ref")
    get = api_command("get", "state and history of one message", _get)
    get.add_argument("id", help="the message id")
    api_command("status", "the daemon's status", _status)
    events = api_command("events", "print unacked events (one JSON a line with --json)", _events)
    events.add_argument("--follow", action="store_true", help="keep printing new events")
    events.add_argument("--consumer", default="gatewayctl", help="durable cursor name")
    events.add_argument("--no-ack", action="store_true", help="leave the cursor where it is")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
