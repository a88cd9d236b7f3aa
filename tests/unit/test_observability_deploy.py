"""deploy/: the alert rules, the Grafana dashboard and its provisioning.

Every metric name the rules and the dashboard use must be one the code exports
(telemetry/metrics.py, Faust's sensor, the process collector), so a rename cannot silently
blank a panel or disarm an alert. The rules are checked by promtool (check + unit tests) when it
is installed (scripts/test installs it as root from Debian's prometheus package), and by parsing
and validating their structure always.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

from telemetry.metrics import FAUST_METRIC_NAMES, FAUST_PREFIX, Metrics, exported_names
from tests.support.worker import REPO

DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "missing-alerts.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
BUILTIN = frozenset({"up"})  # added by Prometheus to every target
_OUR_NAME = re.compile(r"\b((?:missing_alerts|process)_[a-zA-Z0-9_]+)")
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
_DURATION = re.compile(r"^\d+(ms|s|m|h|d|w|y)$")


def promtool() -> str | None:
    found = shutil.which("promtool")
    local = Path(sys.executable).parent / "promtool"
    return found or (str(local) if local.exists() else None)


def exported() -> set[str]:
    names = exported_names(Metrics().registry)
    faust = CollectorRegistry()
    FaustMetrics.create(faust, FAUST_PREFIX)
    return names | (exported_names(faust) & FAUST_METRIC_NAMES) | BUILTIN


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: ours by prefix, and every ``name{`` selector."""
    names = set(_OUR_NAME.findall(expr))
    names |= {n for n in _SELECTOR.findall(expr) if n not in ("by", "without", "on", "ignoring")}
    return names


def balanced(expr: str) -> bool:
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    in_string = False
    for ch in expr:
        if ch == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack and not in_string


def test_rules_are_valid() -> None:
    """Structure always; promtool's own check and the rule unit tests when it is installed."""
    doc = yaml.safe_load(RULES.read_text())
    assert isinstance(doc["groups"], list) and doc["groups"]
    names: list[str] = []
    for group in doc["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"MissingAlerts[A-Za-z]+", rule["alert"])
            names.append(rule["alert"])
            assert isinstance(rule["expr"], str) and balanced(rule["expr"]), rule["alert"]
            assert "for" not in rule or _DURATION.match(rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert len(names) == len(set(names)), "alert names must be unique"
    required = {
        "MissingAlertsWorkerDown",
        "MissingAlertsConsumerLagGrowing",
        "MissingAlertsDispatchFailures",
        "MissingAlertsNoEvents",
        "MissingAlertsEscalationLate",
    }
    assert required <= set(names)
    assert any(r["expr"].strip() == 'up{job="missing-alerts"} == 0' for r in rules())
    tested = yaml.safe_load(RULE_TESTS.read_text())
    tested_names = {t["alertname"] for case in tested["tests"] for t in case["alert_rule_test"]}
    assert tested_names <= set(names) and required <= tested_names

    tool = promtool()
    if tool is None:
        return
    check = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    config = subprocess.run(
        [tool, "check", "config", str(DEPLOY / "prometheus.yml")], capture_output=True, text=True
    )
    assert config.returncode == 0, config.stdout + config.stderr
    unit = subprocess.run(
        [tool, "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_prometheus_config_loads_the_rules() -> None:
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    for path in prom["rule_files"]:
        assert (DEPLOY / path).exists(), path  # relative to prometheus.yml, as Prometheus reads it


def test_every_metric_in_rules_and_dashboard_is_exported() -> None:
    known = exported()
    used: dict[str, set[str]] = {}
    for rule in rules():
        used[rule["alert"]] = metric_names(rule["expr"])
    for i, expr in enumerate(dashboard_exprs()):
        used[f"panel target {i}: {expr}"] = metric_names(expr)
    missing = {where: names - known for where, names in used.items() if names - known}
    assert not missing, f"names no code exports: {missing}"
    assert all(names for names in used.values()), "every expression must name a metric"


def test_dashboard_is_a_grafana_dashboard_with_the_required_panels() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "missing-alerts" and doc["schemaVersion"] >= 36
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    titles = " | ".join(p["title"].lower() for p in doc["panels"])
    for wanted in (
        "events in",
        "open episodes by tier",
        "escalations",
        "notifications by channel and outcome",
        "alert latency p50 / p99",
        "escalation lateness",
        "consumer lag",
        "api requests",
    ):
        assert wanted in titles, wanted
    for panel in doc["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and balanced(target["expr"])
    exprs = " ".join(dashboard_exprs())
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert providers[0]["type"] == "file"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == providers[0]["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    source = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
