"""What every part of the emulator shares: one lock, the clock, the config, the instances and the reset count.

All public methods of the parts take ``World.lock`` (re-entrant), so the server thread, the delivery thread and
test code can share one world.
"""

from __future__ import annotations

import threading
from typing import Callable

from .clock import Clock
from .config import EmulatorConfig
from .instance import Instance


class ControlError(Exception):
    """Bad control-API input: carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def coerce_config(config: EmulatorConfig | dict | None) -> EmulatorConfig:
    """A private copy of ``config`` (the defaults for None, a dict validated)."""
    if config is None:
        return EmulatorConfig()
    if isinstance(config, EmulatorConfig):
        return config.model_copy(deep=True)
    return EmulatorConfig.model_validate(config)


class World:
    """The shared data. ``epoch`` counts resets: a delivery answered after one belongs to the old world."""

    def __init__(self, config: EmulatorConfig | dict | None, clock: Clock | None) -> None:
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self.config = coerce_config(config)
        self.instances: dict[int, Instance] = {}
        self.epoch = 0
        self._listeners: list[Callable[[], None]] = []

    def get(self, id_instance: int) -> Instance:
        """The instance, or ControlError 404."""
        inst = self.instances.get(id_instance)
        if inst is None:
            raise ControlError(404, f"no instance {id_instance}")
        return inst

    def add_listener(self, listener: Callable[[], None]) -> None:
        with self.lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        with self.lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def wake(self) -> None:
        """Tell the listeners (the deliverer) that something may have become deliverable."""
        for listener in self._listeners:
            listener()
