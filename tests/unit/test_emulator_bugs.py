"""The emulator's per-instance seed options for GREEN-API's reported behaviours (#1108, #1100, #1107), MAX's
``/v3`` prefix, a strict receiveTimeout, GetSettings' documented fields and SetSettings. Each option is off by
default: the tests also check that an instance seeded without it behaves as before."""

from __future__ import annotations

import pytest

from emulator import EmulatorControl
from emulator.config import DOCUMENTED_SETTINGS, WEBHOOK_URL_CLEAR_REASON, InstanceSeed
from tests.helpers import EMULATED_ID as ID, EMULATED_OTHER_ID as OTHER, EMULATED_TOKEN as TOKEN, method_path as u
from tests.helpers import seed_emulated as seed


@pytest.fixture
def ctl(server):
    with EmulatorControl(server.url) as control:
        control.reset({"clear_window_seconds": 60, "count_refresh_seconds": 0})
        yield control


def count(api, id_instance: int = ID) -> int:
    response = api.get(u("getWebhooksCount", id_instance=id_instance))
    assert response.status_code == 200, response.text
    return response.json()["count"]


# ------------------------------------------------------------------ #1108: 0 on a full queue


def test_count_zero_at_reads_0_once_the_queue_holds_that_many(ctl, api):
    seed(ctl, notifications=4, count_zero_at=5)
    seed(ctl, id_instance=OTHER, notifications=5)
    assert count(api) == 4  # below the threshold: right
    ctl.patch_instance(ID, add_notifications=1)
    assert count(api) == 0 and ctl.instance(ID)["queue_length"] == 5  # full: 0, still queued
    peek = api.get(u("receiveNotification"), params={"receiveTimeout": 5}).json()
    assert peek is not None and peek["receiptId"] == 1  # a peek still finds them
    assert count(api, OTHER) == 5  # per instance: the other one is right
    ctl.patch_instance(ID, count_zero_at=None)
    assert count(api) == 5


# ------------------------------------------------------------------ #1100: 0 while the webhookUrl is unreachable


def test_webhook_url_unreachable_reads_0_while_a_webhook_url_is_set(ctl, api):
    seed(ctl, notifications=3, webhook_url_unreachable=True)
    assert count(api) == 3  # no webhookUrl: nothing to be unreachable
    ctl.patch_instance(ID, webhook_url="https://unreachable.example/hook")
    assert count(api) == 0 and ctl.instance(ID)["queue_length"] == 3
    seed(ctl, id_instance=OTHER, notifications=3, webhook_url="https://reachable.example/hook")
    assert count(api, OTHER) == 3  # a webhookUrl alone does not zero the count


# ------------------------------------------------------------------ #1107: clear fails while a webhookUrl is set


def test_clear_fails_while_a_webhook_url_is_set_and_the_workaround_works(ctl, api):
    seed(ctl, notifications=2, webhook_url="https://hook.example/in", clear_fails_with_webhook_url=True)
    failed = api.delete(u("clearWebhooksQueue"))
    assert failed.status_code == 200 and failed.json() == {"isCleared": False, "reason": WEBHOOK_URL_CLEAR_REASON}
    view = ctl.instance(ID)
    assert view["queue_length"] == 2 and view["window_left_seconds"] == 0  # nothing cleared, no window opened
    assert api.delete(u("clearWebhooksQueue")).json()["isCleared"] is False  # every time, not once
    # the workaround: remove the webhook URL, clear, set it back
    assert api.post(u("setSettings"), json={"webhookUrl": ""}).json() == {"saveSettings": True}
    assert api.delete(u("clearWebhooksQueue")).json() == {"isCleared": True, "reason": ""}
    assert api.post(u("setSettings"), json={"webhookUrl": "https://hook.example/in"}).json() == {"saveSettings": True}
    assert ctl.instance(ID)["queue_length"] == 0 and ctl.instance(ID)["webhook_url"] == "https://hook.example/in"
    assert ctl.violations() == []


def test_clear_fails_with_a_reason_of_its_own_and_not_without_a_webhook_url(ctl, api):
    seed(ctl, notifications=1, webhook_url="https://hook.example/in", clear_fails_with_webhook_url="Webhook is set")
    seed(ctl, id_instance=OTHER, notifications=1, clear_fails_with_webhook_url=True)
    assert api.delete(u("clearWebhooksQueue")).json() == {"isCleared": False, "reason": "Webhook is set"}
    assert api.delete(u("clearWebhooksQueue", id_instance=OTHER)).json()["isCleared"] is True
    with pytest.raises(ValueError):
        InstanceSeed(id_instance=ID, api_token=TOKEN, clear_fails_with_webhook_url="")


# ------------------------------------------------------------------ MAX: /v3


def test_v3_instances_answer_under_v3_and_whatsapp_ones_do_not(ctl, api):
    seed(ctl, type_instance="v3", notifications=1)
    seed(ctl, id_instance=OTHER)
    assert api.get(u("getStateInstance", prefix="/v3")).json() == {"stateInstance": "authorized"}
    assert api.get(u("getStateInstance")).status_code == 200  # the prefix is optional by default
    peek = api.get(u("receiveNotification", prefix="/v3"), params={"receiveTimeout": 5}).json()
    assert peek["body"]["instanceData"]["typeInstance"] == "v3"
    assert api.get(u("getStateInstance", id_instance=OTHER, prefix="/v3")).status_code == 404
    assert api.get(u("getStateInstance", id_instance=OTHER)).status_code == 200
    assert api.get(f"/v3/waInstance{ID}/getStateInstance/wrong").status_code == 401  # auth as usual under /v3


def test_v3_prefix_required_refuses_the_plain_path(ctl, api):
    seed(ctl, type_instance="v3", v3_prefix_required=True)
    assert api.get(u("getWebhooksCount")).status_code == 404
    assert api.get(u("getWebhooksCount", prefix="/v3")).status_code == 200


# ------------------------------------------------------------------ receiveTimeout 5-60


@pytest.mark.parametrize(("value", "status"), [("4", 400), ("61", 400), ("0", 400), ("abc", 400), ("5", 200), ("60", 200)])
def test_strict_receive_timeout_refuses_values_outside_5_to_60(ctl, api, value, status):
    seed(ctl, notifications=1, strict_receive_timeout=True)
    response = api.get(u("receiveNotification"), params={"receiveTimeout": value})
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["error"] in ("receiveTimeout must be an integer from 5 to 60", "receiveTimeout must be a non-negative integer")
    assert api.get(u("receiveNotification")).status_code == 200  # missing: GREEN-API's default, 5


def test_lenient_receive_timeout_is_the_default(ctl, api):
    seed(ctl, notifications=1)
    assert api.get(u("receiveNotification"), params={"receiveTimeout": 0}).status_code == 200
    assert api.get(u("receiveNotification"), params={"receiveTimeout": 1}).status_code == 200


# ------------------------------------------------------------------ GetSettings, SetSettings


def test_get_settings_answers_every_documented_field(ctl, api):
    seed(ctl, wid="71231234567@c.us", settings={"stateWebhook": "no"})
    body = api.get(u("getSettings")).json()
    assert list(body) == list(DOCUMENTED_SETTINGS)
    assert body["wid"] == "71231234567@c.us" and body["webhookUrl"] == "" and body["stateWebhook"] == "no"
    assert isinstance(body["delaySendMessagesMilliseconds"], int)
    with pytest.raises(ValueError):
        InstanceSeed(id_instance=ID, api_token=TOKEN, settings={"notASetting": "yes"})


def test_set_settings_changes_the_settings_it_is_given_and_only_those(ctl, api):
    seed(ctl)
    before = api.get(u("getSettings")).json()
    answer = api.post(u("setSettings"), json={"webhookUrl": "https://hook.example/in", "stateWebhook": "no", "delaySendMessagesMilliseconds": 500})
    assert answer.status_code == 200 and answer.json() == {"saveSettings": True}
    ctl.advance_clock(1.1)  # getSettings: once a second
    after = api.get(u("getSettings")).json()
    assert after == {**before, "webhookUrl": "https://hook.example/in", "stateWebhook": "no", "delaySendMessagesMilliseconds": 500}
    assert ctl.instance(ID)["webhook_url"] == "https://hook.example/in"  # receiveNotification and the bugs see it


@pytest.mark.parametrize("body", [b"", b"{}", b"[]", b"not json", b'{"wid": "1@c.us"}', b'{"noSuchField": "VALUEmarker42"}',
                                  b'{"stateWebhook": 1}', b'{"delaySendMessagesMilliseconds": "VALUEmarker42"}',
                                  b'{"stateWebhook": true}'])
def test_set_settings_refuses_empty_unknown_read_only_and_mistyped_fields_without_echoing_values(ctl, api, body):
    seed(ctl)
    response = api.post(u("setSettings"), content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert "VALUEmarker42" not in response.text
    assert ctl.instance(ID)["settings_saved"] == 0


def test_set_settings_is_post_only(ctl, api):
    seed(ctl)
    assert api.get(u("setSettings")).status_code == 404
    assert ctl.instance(ID)["settings_saved"] == 0


def test_set_settings_applies_after_the_configured_delay(ctl, api):
    seed(ctl, webhook_url="https://hook.example/in", settings_apply_delay_seconds=30, notifications=1)
    assert api.post(u("setSettings"), json={"webhookUrl": ""}).json() == {"saveSettings": True}
    assert ctl.instance(ID)["webhook_url"] == "https://hook.example/in" and ctl.instance(ID)["settings_pending"] == 1
    assert api.get(u("receiveNotification"), params={"receiveTimeout": 5}).json() is None  # still pushed to the URL
    ctl.advance_clock(30)
    assert ctl.instance(ID)["webhook_url"] == "" and ctl.instance(ID)["settings_pending"] == 0
    assert api.get(u("receiveNotification"), params={"receiveTimeout": 5}).json()["receiptId"] == 1


def test_the_webhook_url_token_never_reaches_the_call_log(ctl, api):
    secret = "WEBHOOKtoken" + "9f" * 10
    seed(ctl)
    assert api.post(u("setSettings"), json={"webhookUrlToken": secret}).json() == {"saveSettings": True}
    assert api.get(u("getSettings")).json()["webhookUrlToken"] == secret
    assert secret not in str(ctl.calls()) and TOKEN not in str(ctl.calls())
