"""gatewayd entry point.

The daemon (persistent binds, durable queue, socket API) is built on the codec and simulator
of this release; until it lands, ``gatewayd`` reports its version and codec backend and refuses
to start rather than pretend to run.
"""

from __future__ import annotations

import argparse
import sys

from gateway import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gatewayd")
    parser.add_argument("--version", action="version", version=f"gatewayd {__version__}")
    parser.add_argument("--config", help="daemon configuration file (TOML)")
    parser.parse_args(argv)
    from gateway.smpp import codec

    print(
        f"gatewayd {__version__} (SMPP codec: {codec.BACKEND}): the daemon is not in this "
        "release yet; see README.md",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
