"""gatewayd: a carrier-direct SMPP + SIP edge gateway."""

__version__ = "0.1.0"
