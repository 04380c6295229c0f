"""A small synchronous client for the emulator's control API (``/_emulator``)."""

from __future__ import annotations

from typing import Any, Iterable

import httpx
from pydantic import BaseModel


class EmulatorControlError(Exception):
    """The control API answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"emulator control API: HTTP {status}: {message}")
        self.status = status
        self.message = message


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=False)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class EmulatorControl:
    """``EmulatorControl(base_url)``: one method per control route."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url + "/_emulator", timeout=timeout)

    def _call(self, verb: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["json"] = _plain(body)
        if params:
            kwargs["params"] = {k: v for k, v in params.items() if v is not None}
        resp = self._client.request(verb, path, **kwargs)
        if resp.status_code >= 400:
            try:
                data = resp.json()
                message = data.get("error", resp.text) if isinstance(data, dict) else resp.text
                if isinstance(data, dict) and data.get("details"):
                    message = f"{message}: {data['details']}"
            except ValueError:
                message = resp.text
            raise EmulatorControlError(resp.status_code, str(message))
        return resp.json()

    # lifecycle -----------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def reset(self, config: Any = None) -> dict[str, Any]:
        return self._call("POST", "/reset", config)

    def get_config(self) -> dict[str, Any]:
        return self._call("GET", "/config")

    def set_config(self, config: Any = None, **fields: Any) -> dict[str, Any]:
        """Merge ``config`` (dict or EmulatorConfig) and/or keyword fields over the current config."""
        body = dict(_plain(config) or {})
        body.update(fields)
        return self._call("PUT", "/config", body)

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return self._call("POST", "/clock/advance", {"seconds": seconds})

    # instances -----------------------------------------------------------
    def seed_instances(self, seeds: Iterable[Any]) -> list[dict[str, Any]]:
        return self._call("POST", "/instances", [_plain(s) for s in seeds])

    def seed_instance(self, seed: Any = None, **fields: Any) -> dict[str, Any]:
        """``seed_instance(id_instance=1101, api_token="...", notifications=5)`` -> the view."""
        body = dict(_plain(seed) or {})
        body.update(fields)
        return self._call("POST", "/instances", body)[0]

    def instances(self) -> list[dict[str, Any]]:
        return self._call("GET", "/instances")

    def instance(self, id_instance: int) -> dict[str, Any]:
        return self._call("GET", f"/instances/{id_instance}")

    def settings(self, id_instance: int) -> dict[str, Any]:
        """Every documented GetSettings field as the instance holds it (webhookUrlToken included); not a call."""
        return self._call("GET", f"/instances/{id_instance}/settings")

    def patch_instance(self, id_instance: int, **fields: Any) -> dict[str, Any]:
        """A silent edit (a state or wid given here queues no stateInstanceChanged; see ``change_state``)."""
        return self._call("PATCH", f"/instances/{id_instance}", _plain(fields))

    def change_state(self, id_instance: int, state: str, wid: str | None = None) -> dict[str, Any]:
        """The state (and with ``wid`` the account) changes; a stateInstanceChanged is queued behind what is
        queued when the instance's stateWebhook is "yes". -> ``{"state", "wid", "queued": [...], "queue_length"}``."""
        body: dict[str, Any] = {"state": state}
        if wid is not None:
            body["wid"] = wid
        return self._call("POST", f"/instances/{id_instance}/state", body)

    def add_notifications(self, id_instance: int, count: int = 1, type_webhook: str | None = None) -> dict[str, Any]:
        """Queue ``count`` notifications of the account now on the instance (incomingMessageReceived unless
        ``type_webhook`` says otherwise). -> ``{"queued": [{"receiptId", "idMessage", "wid", "timestamp"}...],
        "queue_length"}``."""
        body: dict[str, Any] = {"count": count}
        if type_webhook is not None:
            body["type_webhook"] = type_webhook
        return self._call("POST", f"/instances/{id_instance}/notifications", body)

    # faults --------------------------------------------------------------
    def add_fault(self, id_instance: int, method: str, fault: dict[str, Any], times: int | None = 1,
                  after: int = 0) -> dict[str, Any]:
        """``add_fault(1101, "getWebhooksCount", {"kind": "status", "status": 502}, times=2)``;
        ``after=1`` lets the first matching call through and faults the second."""
        return self._call("POST", f"/instances/{id_instance}/faults",
                          {"method": method, "fault": _plain(fault), "times": times, "after": after})

    def add_faults(self, id_instance: int, rules: Iterable[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", f"/instances/{id_instance}/faults", [_plain(r) for r in rules])

    def clear_faults(self, id_instance: int) -> dict[str, Any]:
        return self._call("DELETE", f"/instances/{id_instance}/faults")

    # observation ---------------------------------------------------------
    def calls(self, instance: int | None = None, method: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/calls", params={"instance": instance, "method": method})

    def counts(self) -> dict[str, Any]:
        """Calls since the last reset, not capped like the log: ``{"total", "by_method",
        "by_instance_method", "answered_by_instance_method"}`` (instance ids as strings)."""
        return self._call("GET", "/counts")

    def clear_calls(self) -> dict[str, Any]:
        return self._call("DELETE", "/calls")

    def deliveries(self, instance: int | None = None, after_seq: int | None = None) -> list[dict[str, Any]]:
        """Webhook delivery attempts, oldest first (``after_seq``: only those with a greater ``seq``)."""
        return self._call("GET", "/deliveries", params={"instance": instance, "after_seq": after_seq})

    def clear_deliveries(self) -> dict[str, Any]:
        return self._call("DELETE", "/deliveries")

    def violations(self, kind: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/violations", params={"kind": kind})

    def clear_violations(self) -> dict[str, Any]:
        return self._call("DELETE", "/violations")

    # context manager -----------------------------------------------------
    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "EmulatorControl":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
