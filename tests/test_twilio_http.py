"""Twilio's Messages API over real HTTP: a local server that answers as Twilio documents it (201
with a sid; errors as JSON with Twilio's code; 429 with Retry-After; 5xx; answers too slow or
too large), against the request builder, the transport and the retries."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import socket
from typing import Any

import pytest
from aiohttp import web

from gateway.cpaas.delivery import RetryPolicy, deliver
from gateway.cpaas.http_outcome import Accepted, Refused, RetryLater
from gateway.cpaas.http_transport import HttpTransport
from gateway.cpaas.twilio_api import TwilioAccount, send_outcome, send_request
from tests.provider_server import serve

pytestmark = pytest.mark.timeout(30)

SID, TOKEN = "AC0123456789abcdef0123456789abcdef", "secret-token"


class FakeTwilio:
    """Answers POST .../Messages.json from a script, one entry per request; records them."""

    def __init__(self, script: list[tuple[Any, ...]]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.messages)

    async def messages(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected or request.match_info["sid"] != SID:
            return error(401, 20003, "Authenticate")
        form = dict(await request.post())
        self.requests.append({k: str(v) for k, v in form.items()})
        step = self.script.pop(0) if self.script else ("ok",)
        kind = step[0]
        if kind == "slow":
            await asyncio.sleep(step[1])
            kind = "ok"
        if kind == "ok":
            body = {"sid": f"SM{len(self.requests):032x}", "status": "queued", "to": form["To"]}
            return web.json_response(body, status=201)
        if kind == "429":
            return error(429, 20429, "Too Many Requests", {"Retry-After": str(step[1])})
        if kind == "5xx":
            return web.Response(status=step[1], text="upstream trouble")
        if kind == "refuse":
            return error(400, step[1], "refused")
        if kind == "huge":
            return web.Response(status=201, body=b"x" * step[1])
        raise AssertionError(step)


def error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


async def send(
    base: str, *, token: str = TOKEN, timeout_s: float = 5.0, max_body: int = 256 * 1024,
    idempotent: bool = False, attempts: int = 5,
) -> tuple[Any, list[float]]:  # fmt: skip
    waits: list[float] = []

    async def sleep(delay: float) -> None:  # the policy's waits, recorded instead of waited
        waits.append(delay)

    account = TwilioAccount(SID, token, base_url=base)
    request = send_request(
        account, "+447700900123", "+15005550006", "hello", "https://gw.example/cb"
    )
    async with HttpTransport(timeout_s=timeout_s, max_body=max_body) as transport:
        result = await deliver(
            transport.send, request, send_outcome, idempotent=idempotent,
            policy=RetryPolicy(max_attempts=attempts), clock=lambda: 1000.0, sleep=sleep,
            rng=random.Random(3),
        )  # fmt: skip
    return result, waits


def run(script: list[tuple[Any, ...]], **options: Any) -> tuple[Any, list[float], FakeTwilio]:
    fake = FakeTwilio(script)

    async def main() -> tuple[Any, list[float]]:
        async for base in serve(fake.app):
            return await send(base, **options)
        raise AssertionError

    result, waits = asyncio.run(main())
    return result, waits, fake


def test_a_message_twilio_takes_at_once() -> None:
    result, waits, fake = run([("ok",)])
    assert isinstance(result.outcome, Accepted) and result.outcome.provider_id.startswith("SM")
    assert (result.attempts, result.possible_duplicates, waits) == (1, 0, [])
    assert fake.requests == [
        {"To": "+447700900123", "From": "+15005550006", "Body": "hello",
         "StatusCallback": "https://gw.example/cb"}
    ]  # fmt: skip


def test_429_waits_the_retry_after_and_5xx_backs_off() -> None:
    result, waits, fake = run([("429", 2), ("5xx", 503), ("5xx", 500), ("ok",)])
    assert isinstance(result.outcome, Accepted) and result.attempts == 4
    assert waits[0] == 2.0  # Twilio's Retry-After
    assert 0 <= waits[1] <= 1.0 and 0 <= waits[2] <= 2.0  # full-jitter backoff, doubling
    assert len(fake.requests) == 4 and result.possible_duplicates == 0


def test_an_unsubscribed_recipient_is_refused_for_good_as_an_opt_out() -> None:
    result, waits, fake = run([("refuse", 21610)])
    assert result.outcome == Refused(400, "21610", "refused", opt_out=True)
    assert (result.attempts, waits, len(fake.requests)) == (1, [], 1)


def test_a_wrong_token_is_refused_not_retried() -> None:
    result, _, fake = run([("ok",)], token="wrong")
    assert isinstance(result.outcome, Refused) and result.outcome.code == "20003"
    assert result.attempts == 1 and fake.requests == []


def test_a_timed_out_send_is_resent_and_counted_as_a_possible_duplicate() -> None:
    result, _, fake = run([("slow", 2.0), ("ok",)], timeout_s=0.3)
    assert isinstance(result.outcome, Accepted) and result.attempts == 2
    assert result.possible_duplicates == 1
    assert len(fake.requests) == 2  # Twilio took both: the reason it is counted


def test_with_an_idempotency_key_a_resend_is_no_duplicate() -> None:
    result, _, _ = run([("slow", 2.0), ("ok",)], timeout_s=0.3, idempotent=True)
    assert isinstance(result.outcome, Accepted) and result.possible_duplicates == 0


def test_an_answer_too_large_to_read_is_an_unknown_outcome() -> None:
    result, _, fake = run([("huge", 1 << 20), ("ok",)], max_body=4096)
    assert isinstance(result.outcome, Accepted) and result.possible_duplicates == 1
    assert len(fake.requests) == 2


def test_a_provider_that_cannot_be_reached_gives_up_after_the_attempts() -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

    async def main() -> tuple[Any, list[float]]:
        return await send(f"http://127.0.0.1:{port}", attempts=3)

    result, waits = asyncio.run(main())
    assert result.outcome is None and not result.final and result.attempts == 3
    assert result.possible_duplicates == 0 and result.last_error.startswith("not sent")
    assert len(waits) == 2


def test_a_retry_after_past_the_total_budget_gives_up_with_the_answer() -> None:
    result, waits, _ = run([("429", 3600)])
    assert isinstance(result.outcome, RetryLater) and result.outcome.after_s == 3600
    assert result.attempts == 1 and waits == [] and not result.final
