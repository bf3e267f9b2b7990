"""gateway-smsc-sim: an SMPP 3.4 SMSC simulator for tests, the demo and load tests.

The protocol logic is ``core.SmscCore`` (no I/O); ``SmscSimulator`` runs it on asyncio and
``SimulatorThread`` runs that in a background thread for blocking clients.
"""

from .config import Account, ConfigError, SimConfig, build_config, load_config
from .core import BindMode, BindRecord, SmscCore
from .counters import Counters
from .server import SmscSimulator
from .thread import SimulatorThread

__all__ = [
    "Account",
    "BindMode",
    "BindRecord",
    "ConfigError",
    "Counters",
    "SimConfig",
    "SimulatorThread",
    "SmscCore",
    "SmscSimulator",
    "build_config",
    "load_config",
]
