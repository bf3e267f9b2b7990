"""sms.send refuses a number whose owner opted out, from the moment the opt-out is stored and
after a restart; other numbers are not affected."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.api.errors import ApiError, ErrorCode
from gateway.api.schema import SenderKind, SendRequest
from gateway.ops.config import Limits
from gateway.service import GatewayCore
from gateway.store.sqlite_store import SqliteStore


def request(to: str) -> SendRequest:
    return SendRequest(to=to, sender="ACME", sender_kind=SenderKind.ALPHANUMERIC, text="hi")


def refusal(core: GatewayCore, to: str) -> str:
    try:
        core.send_sms_then(request(to), "uid:0", lambda error, result: None)
    except ApiError as exc:
        return exc.code
    raise AssertionError("not refused")


def test_an_opted_out_number_is_refused_with_its_own_code(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")

    async def first() -> list[Any]:
        store = SqliteStore(path)
        try:
            core = GatewayCore(store, {}, Limits())  # no carrier: any other send is refused too
            assert await core.load_opt_outs() == 0
            before = refusal(core, "+447700900123")
            assert await core.record_opt_out("+447700900123", "twilio:21610", {"sid": "SM1"})
            return [before, refusal(core, "+447700900123"), refusal(core, "+447700900124")]
        finally:
            await store.aclose()

    assert asyncio.run(first()) == [
        ErrorCode.E_INTERNAL,  # no carrier configured: the send got past the opt-out check
        ErrorCode.E_OPTED_OUT,
        ErrorCode.E_INTERNAL,
    ]

    async def after_restart() -> list[Any]:
        store = SqliteStore(path)
        try:
            core = GatewayCore(store, {}, Limits())
            loaded = await core.load_opt_outs()
            refused = refusal(core, "+447700900123")
            await core.remove_opt_out("+447700900123")
            return [loaded, refused, refusal(core, "+447700900123")]
        finally:
            await store.aclose()

    assert asyncio.run(after_restart()) == [1, ErrorCode.E_OPTED_OUT, ErrorCode.E_INTERNAL]
    error = ApiError(ErrorCode.E_OPTED_OUT, "x")
    assert not error.retriable
