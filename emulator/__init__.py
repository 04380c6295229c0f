"""A local HTTP server that behaves like GREEN-API for the queue methods.

Standalone: ``python -m emulator --port 8080 --seed seed.json`` (its command line: cli/emulator.py).
In tests: ``with EmulatorServer(EmulatorConfig(clear_window_seconds=2)) as srv: ...``.
"""

from .app import build_app
from .clock import Clock
from .config import (
    METHOD_VERBS,
    EmulatorConfig,
    FaultRule,
    InstancePatch,
    InstanceSeed,
    NewNotifications,
    RefuseClears,
    SeedFile,
    StateChange,
    load_seed_file,
)
from .control import EmulatorControl, EmulatorControlError
from .delivery import Deliverer
from .server import EmulatorServer
from .state import EmulatorState
from .world import ControlError

__all__ = [
    "METHOD_VERBS",
    "Clock",
    "ControlError",
    "Deliverer",
    "EmulatorConfig",
    "EmulatorControl",
    "EmulatorControlError",
    "EmulatorServer",
    "EmulatorState",
    "FaultRule",
    "InstancePatch",
    "InstanceSeed",
    "NewNotifications",
    "RefuseClears",
    "SeedFile",
    "StateChange",
    "build_app",
    "load_seed_file",
]
