"""Reads prefect.yaml, the one place the deployments (schedules, triggers, parameters) are declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.events.schemas.deployment_triggers import DeploymentTriggerTypes
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.schedules import Cron, Interval, Schedule
from pydantic import TypeAdapter

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"

_triggers = TypeAdapter(list[DeploymentTriggerTypes])


def deployment_specs(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    """The `deployments:` entries of prefect.yaml, as written."""
    with path.open(encoding="utf-8") as handle:
        return list(yaml.safe_load(handle)["deployments"])


def load_flow(spec: dict[str, Any]) -> Flow:
    """The flow an entrypoint names, relative to the project root (as `prefect deploy` resolves it)."""
    return load_flow_from_entrypoint(str(PROJECT_ROOT / spec["entrypoint"]))


def triggers(spec: dict[str, Any]) -> list[Any]:
    return _triggers.validate_python(spec.get("triggers") or [])


def schedules(spec: dict[str, Any]) -> list[Schedule]:
    built = []
    for entry in spec.get("schedules") or []:
        common = dict(timezone=entry.get("timezone"), active=entry.get("active", True), parameters=entry.get("parameters") or {})
        if "cron" in entry:
            built.append(Cron(entry["cron"], **common))
        elif "interval" in entry:
            built.append(Interval(entry["interval"], **common))
        else:
            raise ValueError(f"deployment {spec['name']}: only cron and interval schedules are supported here: {entry}")
    return built


def runner_deployments(path: Path = PREFECT_YAML) -> list[Any]:
    """RunnerDeployments for `serve`, built from exactly what prefect.yaml declares."""
    built = []
    for spec in deployment_specs(path):
        limit = spec.get("concurrency_limit")
        built.append(
            load_flow(spec).to_deployment(
                name=spec["name"],
                description=spec.get("description"),
                tags=spec.get("tags"),
                parameters=spec.get("parameters") or {},
                schedules=schedules(spec) or None,
                triggers=triggers(spec) or None,
                concurrency_limit=ConcurrencyLimitConfig(**limit) if isinstance(limit, dict) else limit,
                enforce_parameter_schema=spec.get("enforce_parameter_schema", True),
            )
        )
    return built
