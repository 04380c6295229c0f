"""Typed answers of the GREEN-API methods this project uses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

# The method pages print the key with a Cyrillic "с" (U+0441); clients and other pages use ASCII.
COUNT_KEYS = ("count", "\u0441ount")

class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StateInstance(_Answer):
    """GetStateInstance. Unknown states are kept as text, not rejected."""

    state_instance: str = Field(alias="stateInstance")


class InstanceSettings(_Answer):
    """The parts of GetSettings this project reads."""

    wid: str = ""
    webhook_url: str = Field(default="", alias="webhookUrl")
    # The secret GREEN-API sends as ``Authorization: Bearer`` to the webhookUrl: never logged, never shown.
    webhook_url_token: SecretStr = Field(default=SecretStr(""), alias="webhookUrlToken")
    state_webhook: str = Field(default="", alias="stateWebhook")

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: ("" if value is None else value) for key, value in data.items()}
        return data

    @property
    def webhook_url_set(self) -> bool:
        return bool(self.webhook_url.strip())


class SaveSettings(_Answer):
    """SetSettings: ``{"saveSettings": true}``. GREEN-API restarts the instance; the values apply within 5 minutes."""

    save_settings: bool = Field(alias="saveSettings")


class QueueCount(_Answer):
    """GetWebhooksCount / GetMessagesCount, with either spelling of ``count``."""

    count: int = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def _either_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in COUNT_KEYS:
                if key in data:
                    return {"count": data[key]}
            raise ValueError("neither 'count' nor its Cyrillic spelling is in the body")
        return data


class ClearOutcome(_Answer):
    """ClearWebhooksQueue / ClearMessagesQueue: the answer is HTTP 200 in all three cases."""

    is_cleared: bool = Field(alias="isCleared")
    reason: str = ""
    left_time: int | None = Field(default=None, alias="leftTime", ge=0)

    @model_validator(mode="before")
    @classmethod
    def _null_reason(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("reason") is None:
            data = {**data, "reason": ""}
        return data

    @property
    def kind(self) -> Literal["cleared", "too_early", "refused"]:
        if self.is_cleared:
            return "cleared"
        if self.left_time is not None:
            return "too_early"
        return "refused"


class Notification(_Answer):
    """One queued incoming notification, as ReceiveNotification shows it (peeked, not removed)."""

    receipt_id: int = Field(alias="receiptId")
    body: dict[str, Any] = Field(default_factory=dict)

    @property
    def type_webhook(self) -> str:
        return str(self.body.get("typeWebhook", ""))

    @property
    def timestamp(self) -> int | None:
        value = self.body.get("timestamp")
        return value if isinstance(value, int) else None
