"""prefect.yaml: every entrypoint loads, parameters validate against the flow's schema, the form is usable,
and `prefect deploy --all` registers it all on a real Prefect server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools import validate

from deploy.project import PROJECT_ROOT, deployment_specs, load_flow, schedules, triggers
from bench.servers import client_env

SPECS = {spec["name"]: spec for spec in deployment_specs()}


def _schema(spec) -> dict:
    return parameter_schema(load_flow(spec)).model_dump_for_openapi()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_entrypoint_loads_and_every_declared_parameter_set_is_valid(name):
    spec = SPECS[name]
    flow = load_flow(spec)
    assert flow.name == spec["entrypoint"].rsplit(":", 1)[1].replace("_", "-")
    schema = _schema(spec)
    parameter_sets = [spec.get("parameters") or {}]
    parameter_sets += [s.parameters for s in schedules(spec)]
    for trigger in triggers(spec):
        # Templated values are filled in from the event; check the fixed ones and that templates name real parameters.
        assert set(trigger.parameters or {}) <= set(schema["properties"]), trigger.name
        parameter_sets.append({k: v for k, v in (trigger.parameters or {}).items() if "{{" not in str(v)})
    for parameters in parameter_sets:
        validate(parameters, schema, raise_on_error=True, ignore_required=True)


@pytest.mark.parametrize("payload, passed", [({}, None), ({"clear_outgoing": False}, False), ({"clear_outgoing": True}, True)])
def test_the_triggers_pass_clear_outgoing_only_as_the_event_says(payload, passed):
    """Rendered as Prefect's server renders a trigger's parameters; None leaves the choice to the flow."""
    from prefect.server.events.actions import RunDeployment
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    schema = _schema(SPECS["handle-account-change"])
    event = {"payload": payload, "resource": {"greenapi.id-instance": "7105000001"}}
    for trigger in triggers(SPECS["handle-account-change"]):
        parameters = dict(trigger.parameters)
        RunDeployment._upgrade_v1_templates(parameters)
        rendered = hydrate(parameters, HydrationContext(raise_on_error=True, render_jinja=True, jinja_context={"event": event}))
        assert rendered["clear_outgoing"] is passed, trigger.name
        validate(rendered, schema, raise_on_error=True)


def test_a_wrong_parameter_is_refused_by_the_schema():
    schema = _schema(SPECS["handle-account-change"])
    with pytest.raises(Exception, match="phone_lost"):
        validate({"reason": "phone_lost"}, schema, raise_on_error=True)
    with pytest.raises(Exception):
        validate({"reason": "number_blocked", "max_clear_attempts": 0}, schema, raise_on_error=True)


def test_the_handle_form_offers_reasons_as_an_enum_with_descriptions():
    schema = _schema(SPECS["handle-account-change"])
    reason = schema["properties"]["reason"]
    enum = schema["definitions"][reason["$ref"].rsplit("/", 1)[1]]["enum"]
    assert enum == ["number_blocked", "account_changed"]
    assert not schema.get("required") and reason["default"] == "account_changed"  # the form opens on a choice, never empty: the one that clears no unsent messages
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{name} has no description in the UI form"
    assert schema["properties"]["max_clear_attempts"]["anyOf"][0]["maximum"] == 50
    assert "token" not in " ".join(schema["properties"])  # no secret is ever a parameter


def test_triggers_and_schedule_are_declared_as_the_issue_asks():
    handle, sweep = SPECS["handle-account-change"], SPECS["sweep-instances"]
    expected = {tuple(t.expect) for t in triggers(handle)}
    assert expected == {("greenapi.instance.number-blocked",), ("greenapi.instance.account-changed",)}
    (schedule,) = schedules(sweep)
    assert schedule.cron == "*/15 * * * *" and schedule.timezone == "UTC"


@pytest.mark.e2e
async def test_prefect_deploy_all_registers_deployments_schedules_and_automations(prefect_server, tmp_path):
    env = client_env(prefect_server.api_url, tmp_path / "home")
    prefect = str(Path(sys.executable).with_name("prefect"))
    subprocess.run([prefect, "--no-prompt", "work-pool", "create", "greenapi", "--type", "process", "--overwrite"],
                   env=env, cwd=PROJECT_ROOT, check=True, capture_output=True, timeout=120)
    done = subprocess.run([prefect, "--no-prompt", "deploy", "--all"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    async with get_client() as client:
        handle = sweep = None
        try:
            handle = await client.read_deployment_by_name("handle-account-change/handle-account-change")
            sweep = await client.read_deployment_by_name("sweep-instances/sweep-instances")
            assert handle.work_pool_name == sweep.work_pool_name == "greenapi"
            assert [s.schedule.cron for s in sweep.schedules] == ["*/15 * * * *"]
            assert sweep.schedules[0].schedule.timezone == "UTC"
            automations = await client.read_automations_by_name("greenapi-number-blocked")
            assert automations and automations[0].actions[0].deployment_id == handle.id
            assert handle.enforce_parameter_schema
            # The form Prefect stored: `instance` a plain text field, `reason` opening on a choice.
            stored = handle.parameter_openapi_schema["properties"]
            assert stored["instance"]["type"] == "string" and "anyOf" not in stored["instance"]
            assert stored["reason"]["default"] == "account_changed"
        finally:
            # Leave the shared server as it was: served deployments in other tests own these names.
            for deployment in (d for d in (handle, sweep) if d is not None):
                for automation in await client.read_resource_related_automations(f"prefect.deployment.{deployment.id}"):
                    await client.delete_automation(automation.id)
            await client.delete_work_pool("greenapi")
