"""Settings: environment mapping, embedded defaults, and redaction of secrets."""

import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import ROOT

from aura_assets.instance import BASE_CONFIG, instance_yaml, storage_url
from lakehouse.exceptions import ConfigurationError
from lakehouse.settings import Settings, redact_text, redact_url


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
    repo_yaml = ROOT / "dagster.yaml"
    assert repo_yaml.read_text() == BASE_CONFIG
    assert instance_yaml(Settings.from_env({"AURA_HOME": str(tmp_path)})) == BASE_CONFIG


SECRET = "Zq7s3cret"
PASSWORD_FORMS = [
    f"postgresql://aura:{SECRET}@db:5432/aura",
    f"postgresql+psycopg://aura:{SECRET}@db/aura",
    f"postgresql://aura:p@ss{SECRET}@db/aura",  # unencoded @ in the password
    f"postgresql://aura:a/{SECRET}@db/aura",  # unencoded / in the password
    f"postgresql://aura@db/aura?sslmode=require&password={SECRET}",
    f"postgresql://db/aura?PASSWORD={SECRET}",
    f"host=db port=5432 user=aura password={SECRET} dbname=aura",
    f"host=db password = '{SECRET} x' dbname=aura",
    f"postgresql://aura:{SECRET}@db:notaport/aura",  # malformed port
    f"postgresql://aura:{SECRET}@[::1/aura",  # malformed host
    f"redis://:{SECRET}@cache:6379/0",
]


@pytest.mark.parametrize("url", PASSWORD_FORMS)
def test_every_url_form_is_redacted(url: str) -> None:
    shown = redact_url(url)
    assert shown is not None and SECRET not in shown and "***" in shown
    message = redact_text(f"cannot connect to {url} (timeout)")
    assert SECRET not in message and message.startswith("cannot connect to ")


def test_plain_urls_are_unchanged() -> None:
    for url in ("sqlite:///x.db", "postgresql://aura@db/aura", "redis://cache:6379/0", "file:///w"):
        assert redact_url(url) == url


@pytest.mark.parametrize("url", PASSWORD_FORMS[:-1])
def test_cli_output_never_shows_a_password(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aura_assets.cli import main

    for name in ("AURA_CATALOG_URI", "AURA_DAGSTER_PG_URL", "AURA_REDIS_URL", "AURA_WAREHOUSE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AURA_HOME", str(tmp_path))
    # A dead port: the commands fail fast; what they print must not hold the password.
    monkeypatch.setenv(
        "AURA_PG_URL", url.replace("db:5432", "127.0.0.1:1").replace("@db/", "@127.0.0.1:1/")
    )
    monkeypatch.setenv("AURA_REDIS_URL", f"redis://:{SECRET}@127.0.0.1:1/0")
    runner = CliRunner()
    for args in (["config"], ["tables"], ["checkpoints", "show", "t-1"]):
        result = runner.invoke(main, args)
        text = result.output + "".join(
            traceback.format_exception(result.exception) if result.exception else []
        )
        assert SECRET not in text, (args, text)
    assert "***" in runner.invoke(main, ["config"]).output


def test_from_values_resolves_like_the_environment(tmp_path: Path) -> None:
    from datetime import date

    from lakehouse.settings import DEFAULT_PARTITIONS_START

    env = {"AURA_HOME": str(tmp_path), "AURA_PG_URL": "postgresql://a@h/db", "AURA_BRANCH": "x"}
    assert Settings.from_values(home=tmp_path, pg_url="postgresql://a@h/db", branch="x") == (
        Settings.from_env(env)
    )
    # Explicit values win over the environment; unset ones fall back to it.
    assert Settings.from_env(env, branch="y").branch == "y"
    assert Settings.from_env(env, branch=None).branch == "x"
    assert Settings.from_env({}).partitions_start == DEFAULT_PARTITIONS_START
    s = Settings.from_env({"AURA_PARTITIONS_START": "2026-10-01"})
    assert s.partitions_start == date(2026, 10, 1)
    with pytest.raises(Exception, match="AURA_PARTITIONS_START='yesterday' is not a day"):
        Settings.from_env({"AURA_PARTITIONS_START": "yesterday"})


@pytest.mark.process
def test_partitions_start_from_the_environment(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    code = "from aura_assets.partitions import DAILY; print(DAILY.start.date())"
    root = ROOT
    env = {**os.environ, "AURA_PARTITIONS_START": "2026-10-05", "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "2026-10-05"


def test_a_keyword_dsn_is_refused_without_echoing_it(tmp_path: Path) -> None:
    from lakehouse.exceptions import ConfigurationError

    dsn = f"host=db port=5432 user=aura password={SECRET} dbname=aura"
    with pytest.raises(ConfigurationError, match="AURA_PG_URL is not a postgresql:// URL") as err:
        Settings.from_env({"AURA_HOME": str(tmp_path), "AURA_PG_URL": dsn})
    assert SECRET not in str(err.value)


def test_a_redis_cluster_url_selects_cluster_mode_and_hides_its_password(tmp_path: Path) -> None:
    from lakehouse.settings import redis_node_url

    for url in ("redis+cluster://127.0.0.1:7101", f"rediss+cluster://aura:{SECRET}@node:6380/0"):
        settings = Settings.from_env({"AURA_HOME": str(tmp_path), "AURA_REDIS_URL": url})
        assert settings.redis_cluster
        assert "Redis Cluster" in settings.describe()["redis"]
        assert SECRET not in repr(settings)
    assert redis_node_url(f"rediss+cluster://aura:{SECRET}@node:6380") == (
        f"rediss://aura:{SECRET}@node:6380"
    )
    plain = Settings.from_env({"AURA_HOME": str(tmp_path), "AURA_REDIS_URL": "redis://h:6379/2"})
    assert not plain.redis_cluster and redis_node_url("redis://h:6379/2") == "redis://h:6379/2"


@pytest.mark.parametrize(
    "url",
    [
        f"redis+cluster://aura:{SECRET}@node:6380/3",  # a cluster has only database 0
        f"redis+cluster://aura:{SECRET}@node",  # no port
        f"rediss+cluster://aura:{SECRET}@node:port",
    ],
)
def test_a_redis_cluster_url_it_cannot_use_is_refused_without_echoing_it(
    tmp_path: Path, url: str
) -> None:
    from lakehouse.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="database 0") as err:
        Settings.from_env({"AURA_HOME": str(tmp_path), "AURA_REDIS_URL": url})
    assert SECRET not in str(err.value)


def test_qdrant_cluster_settings(tmp_path: Path) -> None:
    home = {"AURA_HOME": str(tmp_path)}
    unset = Settings.from_env(home)
    assert unset.qdrant_replication is None and unset.qdrant_write_consistency is None
    assert unset.vectors_path == tmp_path / "vectors"
    assert "Qdrant Edge shards" in unset.describe()["vectors"]
    cluster = Settings.from_env(
        {
            **home,
            "AURA_QDRANT_URL": "http://q:6333",
            "AURA_QDRANT_REPLICATION": "3",
            "AURA_QDRANT_WRITE_CONSISTENCY": "2",
        }
    )
    assert (cluster.qdrant_replication, cluster.qdrant_write_consistency) == (3, 2)
    assert "replication 3, write consistency 2" in cluster.describe()["vectors"]
    for bad in ({"AURA_QDRANT_REPLICATION": "0"}, {"AURA_QDRANT_WRITE_CONSISTENCY": "two"}):
        with pytest.raises(ConfigurationError, match="not a positive integer"):
            Settings.from_env({**home, **bad})
    with pytest.raises(ConfigurationError, match="at most as many replicas"):
        Settings.from_env(
            {**home, "AURA_QDRANT_REPLICATION": "2", "AURA_QDRANT_WRITE_CONSISTENCY": "3"}
        )
