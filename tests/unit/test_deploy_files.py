"""docker-compose.yml cannot run here (no Docker engine): check its wiring by parsing it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.settings import Settings
from tests.support.worker import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_services_present() -> None:
    assert {"kafka", "worker", "prometheus", "grafana", "mailpit"} <= SERVICES.keys()
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:4")


def test_worker_waits_for_healthy_dependencies() -> None:
    deps = SERVICES["worker"]["depends_on"]
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["mailpit"]["condition"] == "service_healthy"
    for name in ("kafka", "mailpit", "worker", "prometheus", "grafana"):
        assert "test" in SERVICES[name]["healthcheck"], name


def test_worker_env_names_are_real_settings() -> None:
    env = SERVICES["worker"]["environment"]
    fields = {f"MISSING_ALERTS_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(set(env) - fields)
    assert not unknown, f"compose sets variables no setting reads: {unknown}"
    assert env["MISSING_ALERTS_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["MISSING_ALERTS_SMTP_HOST"] == "mailpit"


def test_kafka_is_single_node_kraft_and_advertises_its_service_name() -> None:
    env = SERVICES["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_ports_and_prometheus_target_line_up() -> None:
    worker_port = SERVICES["worker"]["environment"]["MISSING_ALERTS_WEB_PORT"]
    assert f"{worker_port}:{worker_port}" in SERVICES["worker"]["ports"]
    prom = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"worker:{worker_port}"]
    mount = SERVICES["prometheus"]["volumes"][0].split(":")[0]
    assert (REPO / Path(mount)).exists()


def test_no_secrets_committed_in_compose() -> None:
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if any(s in key for s in ("TOKEN", "PASSWORD", "SECRET")):
                assert str(value).startswith("${"), (name, key)


def _mounts(service: str) -> dict[str, str]:
    """host path (or volume name) -> container path."""
    return dict(v.split(":")[:2] for v in SERVICES[service]["volumes"])


def test_prometheus_mounts_its_rules_where_its_config_looks_for_them() -> None:
    mounts = _mounts("prometheus")
    config = mounts["./deploy/prometheus.yml"]
    prom = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    config_dir = Path(config).parent
    for rule_file in prom["rule_files"]:
        in_container = config_dir / rule_file
        # Some mount puts the host file at that container path.
        host = next(
            (
                REPO / Path(src) / in_container.relative_to(dst)
                for src, dst in mounts.items()
                if in_container.is_relative_to(dst)
            ),
            None,
        )
        assert host is not None and host.exists(), rule_file


def test_grafana_waits_for_prometheus_and_is_provisioned() -> None:
    grafana = SERVICES["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    mounts = _mounts("grafana")
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    for src in mounts:
        if src.startswith("./"):
            assert (REPO / Path(src)).is_dir(), src
    assert (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").exists()
    assert (REPO / "deploy/grafana/provisioning/dashboards/dashboards.yml").exists()
    assert "grafana-data" in COMPOSE["volumes"]


def _substituted(value: object) -> str:
    """Compose's ${NAME:-default} with nothing set in the environment: the default."""
    import re

    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def test_worker_settings_from_compose_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SERVICES["worker"]["environment"].items():
        monkeypatch.setenv(name, _substituted(value))
    settings = Settings()
    assert settings.link_secret is None  # empty means unset: never an empty HMAC key
    assert settings.environment == "development"


def test_health_checks_ask_the_health_route() -> None:
    assert "/healthz" in " ".join(SERVICES["worker"]["healthcheck"]["test"])
    assert "6066/healthz" in (REPO / "Dockerfile").read_text()
