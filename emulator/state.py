"""The emulator's world as one object: what the control API (``/_emulator``) does, callable in-process.

The rules live with their jobs: ``instance.py`` (one instance and its view), ``notifications.py`` (the queue),
``dispatch.py`` and ``methods.py`` (GREEN-API's requests and method rules), ``faults.py`` (injected faults),
``records.py`` (call log, counts, violations), ``webhooks.py`` (delivery bookkeeping). ``EmulatorState`` holds
them around one shared ``World`` (one lock, one clock); ``state.api`` serves the app, ``state.webhooks`` the
deliverer, ``state.records`` the call log.
"""

from __future__ import annotations

import hmac
from typing import Any, Callable, Iterable

from .clock import Clock
from .config import EmulatorConfig, FaultRule, InstancePatch, InstanceSeed, NewNotifications, StateChange
from .dispatch import GreenApi
from .faults import PendingFault
from .instance import Instance
from .notifications import catch_up, enqueue, queued_view
from .records import CallRecords
from .webhooks import Webhooks
from .world import ControlError, World, coerce_config


class EmulatorState:
    """The emulator's whole world. Thread-safe; driven by ``clock``."""

    def __init__(self, config: EmulatorConfig | dict | None = None, clock: Clock | None = None) -> None:
        self._world = World(config, clock)
        self.clock = self._world.clock
        self.records = CallRecords(self._world)
        self.webhooks = Webhooks(self._world)
        self.api = GreenApi(self._world, self.records)

    # ------------------------------------------------------------ config, clock, reset

    @property
    def config(self) -> EmulatorConfig:
        with self._world.lock:
            return self._world.config.model_copy(deep=True)

    def set_config(self, config: EmulatorConfig | dict) -> EmulatorConfig:
        """Replace the config. A dict is merged over the current values."""
        world = self._world
        with world.lock:
            if isinstance(config, dict):
                world.config = EmulatorConfig.model_validate({**world.config.model_dump(), **config})
            else:
                world.config = coerce_config(config)
            world.wake()
            return world.config.model_copy(deep=True)

    def reset(self, config: EmulatorConfig | dict | None = None) -> None:
        """Forget instances, calls, violations and deliveries; optionally install a new config.
        The clock offset is kept (the clock never goes backwards)."""
        world = self._world
        with world.lock:
            world.config = coerce_config(config)
            world.instances.clear()
            self.records.reset()
            self.webhooks.reset()
            world.epoch += 1
            world.wake()

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock forward (windows, snapshots, arrivals, redelivery pauses)."""
        with self._world.lock:
            offset = self.clock.advance(seconds)
            self._world.wake()  # a redelivery pause may be over
            return offset

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from any thread, under the state's lock: it must not block or call back) whenever
        something may have become deliverable: the deliverer's wake-up."""
        self._world.add_listener(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        self._world.remove_listener(listener)

    # ------------------------------------------------------------ instances

    def add_instances(self, seeds: Iterable[InstanceSeed | dict]) -> list[dict[str, Any]]:
        """Create instances (all or none). Duplicate ids -> ControlError 409."""
        parsed = [s if isinstance(s, InstanceSeed) else InstanceSeed.model_validate(s) for s in seeds]
        world = self._world
        with world.lock:
            ids = [s.id_instance for s in parsed]
            dupes = sorted({i for i in ids if ids.count(i) > 1 or i in world.instances})
            if dupes:
                raise ControlError(409, f"instance(s) already exist: {dupes}")
            now = self.clock.now()
            for seed in parsed:
                inst = Instance.from_seed(seed, now, self.clock.wall())
                enqueue(inst, seed.notifications, self.clock)
                world.instances[inst.id] = inst
            world.wake()
            return [self._view(world.instances[i], now) for i in ids]

    def add_instance(self, seed: InstanceSeed | dict | None = None, **fields: Any) -> dict[str, Any]:
        return self.add_instances([seed if seed is not None else fields])[0]

    def instance(self, id_instance: int) -> dict[str, Any]:
        with self._world.lock:
            inst = self._world.get(id_instance)
            now = self.clock.now()
            catch_up(self._world, inst, now)
            return self._view(inst, now)

    def instances(self) -> list[dict[str, Any]]:
        with self._world.lock:
            now = self.clock.now()
            out = []
            for inst in self._world.instances.values():
                catch_up(self._world, inst, now)
                out.append(self._view(inst, now))
            return out

    def patch_instance(self, id_instance: int, patch: InstancePatch | dict) -> dict[str, Any]:
        """A silent edit: a state or wid given here queues no stateInstanceChanged (see ``change_state``)."""
        if not isinstance(patch, InstancePatch):
            patch = InstancePatch.model_validate(patch)
        with self._world.lock:
            inst = self._world.get(id_instance)
            now = self.clock.now()
            catch_up(self._world, inst, now)
            inst.patch(patch, now)
            enqueue(inst, patch.add_notifications, self.clock)
            self._world.wake()  # a webhookUrl set, or notifications added: something may be deliverable
            return self._view(inst, now)

    def change_state(self, id_instance: int, change: StateChange | dict) -> dict[str, Any]:
        """The instance's state (and, with ``wid``, its account) changes as GREEN-API would see it: unlike a
        PATCH, a stateInstanceChanged with the new state and wid is queued behind what is queued, when the
        instance's ``stateWebhook`` setting is "yes"."""
        if not isinstance(change, StateChange):
            change = StateChange.model_validate(change)
        with self._world.lock:
            inst = self._world.get(id_instance)
            catch_up(self._world, inst, self.clock.now())  # arrivals until now belong to the old account
            inst.state = change.state
            if change.wid is not None:
                inst.wid = change.wid
            receipts = []
            if inst.settings.get("stateWebhook", "yes") == "yes":
                receipts = enqueue(inst, 1, self.clock, "stateInstanceChanged")
                self._world.wake()
            return {"state": inst.state, "wid": inst.wid, "queued": queued_view(inst, receipts),
                    "queue_length": len(inst.queue)}

    def queue_notifications(self, id_instance: int, request: NewNotifications | dict) -> dict[str, Any]:
        """Queue ``count`` notifications (``type_webhook``) of the account now on the instance, behind what is queued."""
        if not isinstance(request, NewNotifications):
            request = NewNotifications.model_validate(request)
        with self._world.lock:
            inst = self._world.get(id_instance)
            catch_up(self._world, inst, self.clock.now())
            receipts = enqueue(inst, request.count, self.clock, request.type_webhook)
            self._world.wake()
            return {"queued": queued_view(inst, receipts), "queue_length": len(inst.queue)}

    def settings(self, id_instance: int) -> dict[str, Any]:
        """Every documented GetSettings field as the instance holds it now (webhookUrlToken included), without
        the call GetSettings would be: no call log entry, no rate count."""
        with self._world.lock:
            inst = self._world.get(id_instance)
            catch_up(self._world, inst, self.clock.now())
            return inst.all_settings()

    def add_faults(self, id_instance: int, rules: Iterable[FaultRule | dict]) -> dict[str, Any]:
        parsed = [r if isinstance(r, FaultRule) else FaultRule.model_validate(r) for r in rules]
        with self._world.lock:
            inst = self._world.get(id_instance)
            inst.faults.extend(PendingFault(rule=r, left=r.times, skip=r.after) for r in parsed)
            return self._view(inst, self.clock.now())

    def clear_faults(self, id_instance: int) -> dict[str, Any]:
        """Drop the instance's pending faults; requests held by a ``delay`` fault are answered now."""
        with self._world.lock:
            inst = self._world.get(id_instance)
            inst.faults.clear()
            inst.faults_cleared += 1
            return self._view(inst, self.clock.now())

    def partner_instances(self, partner_token: str) -> dict[str, Any] | list[dict[str, Any]]:
        """GREEN-API's partner ``getInstances``: every instance, in GREEN-API's shape (with its token), or the
        error body GREEN-API sends with HTTP 200 when the partner token is wrong."""
        with self._world.lock:
            expected = self._world.config.partner_token
            if not expected or not hmac.compare_digest(partner_token.encode(), expected.encode()):
                return {"code": 401, "description": "Unauthorized"}
            return [inst.partner_view() for inst in sorted(self._world.instances.values(), key=lambda i: i.id)]

    def _view(self, inst: Instance, now: float) -> dict[str, Any]:
        return inst.view(now, self._world.config.clear_window_seconds)

    # ------------------------------------------------------------ what the emulator recorded

    def calls(self, instance: int | None = None, method: str | None = None) -> list[dict[str, Any]]:
        """The call log, oldest first (token-free summaries)."""
        return self.records.calls(instance, method)

    def clear_calls(self) -> None:
        """Forget the call log and the call counts."""
        self.records.clear_calls()

    def counts(self) -> dict[str, Any]:
        """Calls since the last reset, never capped (see ``CallRecords.counts``)."""
        return self.records.counts()

    def violations(self, kind: str | None = None) -> list[dict[str, Any]]:
        return self.records.violations(kind)

    def clear_violations(self) -> None:
        self.records.clear_violations()

    def deliveries(self, instance: int | None = None, after_seq: int | None = None) -> list[dict[str, Any]]:
        """Every webhook delivery attempt still in the log, oldest first (never the token or the message text)."""
        return self.webhooks.deliveries(instance, after_seq)

    def clear_deliveries(self) -> None:
        """Empty the delivery log (the instances' ``delivered`` counts stay)."""
        self.webhooks.clear_deliveries()
