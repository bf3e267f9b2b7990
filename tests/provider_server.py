"""A local aiohttp server for the CPaaS adapters' tests: `async for base in serve(app)` gives
its base URL (http://127.0.0.1:PORT) while it runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web


async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
