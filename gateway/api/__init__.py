"""The gateway's local API: msgpack frames over a Unix socket (or token-authenticated TCP).

`framing` (sans-I/O frames), `errors` (stable codes), `schema` (per-method validation),
`service` (the Protocol the daemon implements), `server` (asyncio listener), `client` (async
client and a sync wrapper). The wire contract is docs/API.md.
"""
