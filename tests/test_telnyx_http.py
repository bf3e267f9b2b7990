"""Telnyx's Messaging API over real HTTP: a local server answering as Telnyx documents it (a 200
with the message under `data`; errors as `{"errors": [{"code", "title", "detail"}]}`; 429 with
Retry-After; 5xx), against the request builder, the transport and the retries."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from aiohttp import web

from gateway.cpaas.delivery import RetryPolicy, deliver
from gateway.cpaas.http_outcome import Accepted, Refused
from gateway.cpaas.http_transport import HttpTransport
from gateway.cpaas.telnyx_api import TelnyxAccount, send_outcome, send_request
from tests.provider_server import serve

pytestmark = pytest.mark.timeout(30)

KEY = "KEY0123456789"


class FakeTelnyx:
    def __init__(self, script: list[tuple[Any, ...]]) -> None:
        self.script = list(script)
        self.bodies: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/v2/messages", self.messages)

    async def messages(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return errors(401, "10009", "Authentication failed")
        body = await request.json()
        self.bodies.append(body)
        step = self.script.pop(0) if self.script else ("ok",)
        if step[0] == "ok":
            message = {
                "record_type": "message",
                "id": f"40385f64-5717-4562-b3fc-2c963f66a{len(self.bodies):03d}",
                "to": [{"phone_number": body["to"], "status": "queued"}],
                "from": {"phone_number": body["from"]},
                "text": body["text"],
            }
            return web.json_response({"data": message})
        if step[0] == "429":
            return errors(429, "10011", "Too many requests", {"Retry-After": str(step[1])})
        if step[0] == "5xx":
            return errors(step[1], "10007", "Unexpected error")
        if step[0] == "blocked":
            return errors(400, "40300", "Blocked due to STOP message", detail="existing block rule")
        raise AssertionError(step)


def errors(
    status: int, code: str, title: str, headers: dict[str, str] | None = None, detail: str = ""
) -> web.Response:
    body = {"errors": [{"code": code, "title": title, **({"detail": detail} if detail else {})}]}
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


def run(script: list[tuple[Any, ...]], key: str = KEY) -> tuple[Any, list[float], FakeTelnyx]:
    fake = FakeTelnyx(script)
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    async def main() -> Any:
        async for base in serve(fake.app):
            account = TelnyxAccount(key, base_url=base, messaging_profile_id="profile-1")
            request = send_request(account, "+447700900123", "ACME", "hello", "https://gw/cb")
            async with HttpTransport() as transport:
                return await deliver(
                    transport.send, request, send_outcome, idempotent=False,
                    policy=RetryPolicy(), clock=lambda: 0.0, sleep=sleep, rng=random.Random(1),
                )  # fmt: skip
        raise AssertionError

    return asyncio.run(main()), waits, fake


def test_a_message_telnyx_takes_at_once() -> None:
    result, waits, fake = run([("ok",)])
    assert result.outcome == Accepted("40385f64-5717-4562-b3fc-2c963f66a001", "queued")
    assert (result.attempts, waits) == (1, [])
    assert fake.bodies == [
        {"from": "ACME", "to": "+447700900123", "text": "hello", "webhook_url": "https://gw/cb",
         "messaging_profile_id": "profile-1"}
    ]  # fmt: skip


def test_429_and_5xx_are_retried() -> None:
    result, waits, fake = run([("429", 3), ("5xx", 502), ("ok",)])
    assert isinstance(result.outcome, Accepted) and result.attempts == 3
    assert waits[0] == 3.0 and 0 <= waits[1] <= 1.0 and len(fake.bodies) == 3


def test_a_stop_block_is_an_opt_out_and_a_bad_key_a_refusal() -> None:
    result, _, _ = run([("blocked",)])
    assert result.outcome == Refused(
        400, "40300", "Blocked due to STOP message: existing block rule", opt_out=True
    )
    result, _, fake = run([("ok",)], key="wrong")
    assert isinstance(result.outcome, Refused) and result.outcome.code == "10009"
    assert not result.outcome.opt_out and result.attempts == 1 and fake.bodies == []


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b"{}"), (200, b'{"data": []}'), (200, b"not json"), (503, b"<html>")],
)
def test_odd_answers_are_retried_never_taken_as_sent(status: int, body: bytes) -> None:
    outcome = send_outcome(status, {}, body, 0.0)
    assert not isinstance(outcome, Accepted | Refused)
