"""Settings: environment mapping, embedded defaults, and redaction of secrets."""

from pathlib import Path

from aura_assets.instance import BASE_CONFIG, instance_yaml, storage_url
from lakehouse.settings import Settings, redact_url


def test_embedded_defaults_live_under_aura_home(tmp_path: Path) -> None:
    s = Settings.from_env({"AURA_HOME": str(tmp_path)})
    assert s.catalog_uri == f"sqlite:///{tmp_path / 'catalog.db'}"
    assert s.warehouse == (tmp_path / "warehouse").as_uri()
    assert s.redis_url is None and s.qdrant_url is None and s.dagster_pg_url is None
    assert s.checkpoint_url.startswith("sqlite:///")
    assert s.branch == "main"


def test_pg_url_drives_catalog_and_dagster_unless_overridden(tmp_path: Path) -> None:
    pg = "postgresql://aura:s3cret@db:5432/aura"
    s = Settings.from_env({"AURA_HOME": str(tmp_path), "AURA_PG_URL": pg})
    assert s.catalog_uri == "postgresql+psycopg://aura:s3cret@db:5432/aura"
    assert s.dagster_pg_url == pg and s.checkpoint_url == pg
    assert "env: AURA_DAGSTER_STORAGE_URL" in instance_yaml(s) and pg not in instance_yaml(s)
    assert storage_url(s) == "postgresql+psycopg2://aura:s3cret@db:5432/aura"
    override = Settings.from_env(
        {
            "AURA_PG_URL": pg,
            "AURA_CATALOG_URI": "sqlite:////tmp/c.db",
            "AURA_DAGSTER_PG_URL": "postgresql://d@h/dag",
        }
    )
    assert override.catalog_uri == "sqlite:////tmp/c.db"
    assert storage_url(override) == "postgresql+psycopg2://d@h/dag"


def test_passwords_never_shown(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "AURA_HOME": str(tmp_path),
            "AURA_PG_URL": "postgresql://aura:s3cret@db/aura",
            "AURA_REDIS_URL": "redis://:hunter2@cache:6379/0",
        }
    )
    shown = repr(s) + str(s.describe()) + instance_yaml(s)
    assert "s3cret" not in shown and "hunter2" not in shown
    assert redact_url("redis://:hunter2@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_repo_dagster_yaml_is_the_embedded_instance_config(tmp_path: Path) -> None:
    repo_yaml = Path(__file__).resolve().parents[1] / "dagster.yaml"
    assert repo_yaml.read_text() == BASE_CONFIG
    assert instance_yaml(Settings.from_env({"AURA_HOME": str(tmp_path)})) == BASE_CONFIG
