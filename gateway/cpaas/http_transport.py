"""HTTP for the CPaaS adapters: one request out, the answer back, or which way it failed.

A failure says whether the request can have reached the provider, because that decides whether
sending it again can duplicate the message: `Unsent` (no connection was made: sending again is
safe) or `Unknown` (it went out and no whole answer came back: a timeout, a connection lost
mid-answer, an answer too large to read). Answers are read up to `max_body` octets; a provider
that sends more gets `Unknown`, never unbounded memory. The aiohttp session is made on first
use, on the running loop.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from gateway.cpaas.http_outcome import HttpRequest

MAX_BODY = 256 * 1024  # provider answers are a few hundred octets of JSON


class TransportError(Exception):
    """The request has no answer."""


class Unsent(TransportError):
    """No connection was made: the provider did not get the request."""


class Unknown(TransportError):
    """The request went out and no whole answer came back: it may have been taken."""


class HttpTransport:
    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        max_body: int = MAX_BODY,
    ) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self.max_body = max_body
        self._session: aiohttp.ClientSession | None = None

    async def send(self, request: HttpRequest) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of the provider's answer; raises Unsent or Unknown."""
        session = self._session_now()
        try:
            async with session.request(
                request.method, request.url, headers=request.headers, data=request.body
            ) as response:
                body = await response.content.read(self.max_body + 1)
                if len(body) > self.max_body:
                    raise Unknown(f"answer longer than {self.max_body} octets")
                return response.status, dict(response.headers), body
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise Unsent(str(exc) or "no connection in time") from exc  # never sent
        except TimeoutError as exc:
            raise Unknown("no answer in time") from exc
        except aiohttp.ClientError as exc:  # dropped mid-answer, malformed answer
            raise Unknown(f"{type(exc).__name__}: {exc}") from exc

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
