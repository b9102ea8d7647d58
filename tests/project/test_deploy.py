"""deploy/: the Helm values a team applies hold against Dagster's schema and our settings."""

from __future__ import annotations

import re
from typing import Any

import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config_schema
from helpers import ROOT

from aura_assets.concurrency import table_pool
from aura_assets.definitions import defs
from lakehouse.settings import ENV_VARS

DEPLOY = ROOT / "deploy"
VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _snake_keys(value: Any) -> Any:
    """camelCase chart keys as the chart renders them into dagster.yaml (snake_case)."""
    if isinstance(value, dict):
        return {
            (k if k == "applyLimitPerUniqueValue" else _snake(k)): _snake_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_snake_keys(v) for v in value]
    return value


def _instance_yaml(values: dict[str, Any]) -> dict[str, Any]:
    """The dagster.yaml sections the chart renders from these values (run queue, pools,
    monitoring, retries), for validation by Dagster's own instance schema."""
    daemon = values["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]
    monitoring = dict(daemon["runMonitoring"])
    return {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": coordinator["type"],
            "config": _snake_keys(coordinator["config"]["queuedRunCoordinator"]),
        },
        "concurrency": _snake_keys(values["concurrency"]),
        "run_monitoring": _snake_keys(monitoring),
        "run_retries": _snake_keys(daemon["runRetries"]),
    }


def test_the_instance_the_values_render_is_valid_dagster_config() -> None:
    rendered = _instance_yaml(VALUES)
    result = process_config(dagster_instance_config_schema(), rendered)
    assert result.success, [e.message for e in result.errors or []]
    assert rendered["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    assert VALUES["postgresql"]["enabled"] is False  # Dagster storage on an external PostgreSQL


def test_a_broken_value_is_caught_by_the_same_check() -> None:
    broken = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    broken["concurrency"]["pools"]["defaultLimit"] = "one"
    assert not process_config(dagster_instance_config_schema(), _instance_yaml(broken)).success


def test_the_user_code_deployment_serves_this_code_location() -> None:
    (deployment,) = VALUES["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == "aura_assets.definitions"
    assert args[args.index("--location-name") + 1] == "aura"
    # The pools the values limit are the ones the code declares.
    pools = {a.op.pool for a in defs.assets if getattr(a, "op", None) is not None}
    assert table_pool("routing_decisions") in pools


def test_every_aura_variable_the_deployment_sets_is_one_the_settings_read() -> None:
    config_map = yaml.safe_load((DEPLOY / "aura-env.yaml").read_text())
    secret_names = re.findall(r"--from-literal=([A-Z_]+)=", (DEPLOY / "README.md").read_text())
    names = {n for n in [*config_map["data"], *secret_names] if n.startswith("AURA_")}
    assert {"AURA_WAREHOUSE", "AURA_CATALOG_URI", "AURA_MEMORY_KEY"} <= names
    unknown = names - set(ENV_VARS.values())
    assert not unknown, f"deploy/ sets variables lakehouse/settings.py never reads: {unknown}"
    for name in ("AURA_DAGSTER_PG_URL", "AURA_PG_URL", "AURA_MEMORY_KEY"):
        assert name not in config_map["data"], f"{name} holds a secret: it belongs in aura-secrets"
