"""The run form of handle-account-change (what Prefect derives from the flow's signature) and the run's one
name, ``<reason>-<idInstance>``, from the first line it logs (issue 21, items 4 and 5)."""

from __future__ import annotations

import asyncio
import re

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogWorker
from prefect.utilities.schema_tools import validate

from deploy.project import runner_deployments
from flows import handle_account_change
from flows.handle_account_change import EMPTY_INSTANCE_MESSAGE
from instances import GreenApiInstance
from tests.helpers import every_log_record, run_flow


def _handle_schema() -> dict:
    (deployment,) = [d for d in runner_deployments() if d.name == "handle-account-change"]
    return deployment._parameter_openapi_schema.model_dump_for_openapi()


def test_instance_is_a_plain_text_field_that_says_what_to_type():
    for schema in (handle_account_change.parameters.model_dump_for_openapi(), _handle_schema()):
        instance = schema["properties"]["instance"]
        assert instance["type"] == "string" and "anyOf" not in instance, instance  # no `str | None` toggle
        assert instance["default"] == ""
        for words in ("greenapi-instance block name", "idInstance", "Empty", "GREEN_API_ID_INSTANCE"):
            assert words in instance["description"], words


def test_reason_opens_on_a_choice_and_offers_no_empty_one():
    schema = _handle_schema()
    reason = schema["properties"]["reason"]
    enum = schema["definitions"][reason["$ref"].rsplit("/", 1)[1]]["enum"]
    assert reason["default"] in enum and None not in enum and "" not in enum
    # The form as submitted untouched, and what the sweep and the triggers send, pass the enforced schema.
    validate({"reason": reason["default"], "instance": ""}, schema, raise_on_error=True)
    validate({"reason": "number_blocked", "instance": "7105000001", "clear_outgoing": True}, schema, raise_on_error=True)
    with pytest.raises(Exception):
        validate({"reason": "number_blocked", "instance": None}, schema, raise_on_error=True)


def test_callers_that_pass_none_still_mean_the_settings():
    assert handle_account_change.validate_parameters({"reason": "number_blocked", "instance": None})["instance"] == ""


@pytest.mark.usefixtures("prefect_server")
async def test_an_empty_instance_without_settings_fails_in_the_forms_words(greenapi_env, monkeypatch):
    monkeypatch.delenv("GREEN_API_ID_INSTANCE", raising=False)
    monkeypatch.delenv("GREEN_API_API_TOKEN_INSTANCE", raising=False)
    state = await handle_account_change(reason="number_blocked", instance="", return_state=True)
    assert state.is_failed()
    assert state.message == EMPTY_INSTANCE_MESSAGE
    assert "credentials block" not in state.message


async def _logged_messages(flow_run_id) -> list[str]:
    await asyncio.to_thread(APILogWorker.drain_all, timeout=15)
    async with get_client() as client:
        return [log.message for log in await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))]


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("started_with", ["block-name", "id-instance", "settings"])
async def test_the_first_name_a_run_logs_is_its_final_one(emulator, seed_instance, greenapi_env, monkeypatch, started_with):
    instance = seed_instance(notifications=2)
    greenapi_env(instance)
    wanted = f"account_changed-{instance.id_instance}"
    parameter = {"block-name": f"shop-{instance.id_instance}", "id-instance": str(instance.id_instance), "settings": ""}[started_with]
    if started_with != "settings":
        monkeypatch.delenv("GREEN_API_ID_INSTANCE")
        monkeypatch.delenv("GREEN_API_API_TOKEN_INSTANCE")
        await GreenApiInstance(api_url=emulator.url, id_instance=instance.id_instance,
                               api_token_instance=instance.token).asave(f"shop-{instance.id_instance}", overwrite=True)

    with every_log_record() as log:
        state, report = await run_flow(reason="account_changed", instance=parameter)

    assert state.is_completed(), state.message
    begun = re.findall(r"Beginning flow run '([^']+)'", log.getvalue())
    assert set(begun) == {wanted}, begun  # the same record, seen by each logger the capture listens on
    async with get_client() as client:
        run = await client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == wanted
    # What the Prefect server stored: the Beginning line under the final name, and no line under another one.
    messages = await _logged_messages(run.id)
    assert f"Beginning flow run {wanted!r} for flow 'handle-account-change'" in messages
    assert not [m for m in messages if f"shop-{instance.id_instance}" in m and "Beginning" in m]
