"""The simulator's token bucket: the gateway's own, re-exported for the simulator core."""

from __future__ import annotations

from gateway.routing.token_bucket import TokenBucket

__all__ = ["TokenBucket"]
