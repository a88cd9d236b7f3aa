from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from config import ConfigError, load_policy, load_settings
from config.durations import format_duration, parse_duration
from config.settings import POLICY_DIR
from tests.support.worker import REPO


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dest


def test_shipped_policy_loads_with_spec_ladder() -> None:
    policy = load_policy(POLICY_DIR)
    high = policy.escalation.tiers["high"]  # type: ignore[index]
    assert [s.after for s in high.steps] == [
        timedelta(0),
        timedelta(minutes=30),
        timedelta(hours=2),
    ]
    assert high.renotify_every == timedelta(minutes=15)
    assert [s.until_acknowledged for s in high.steps] == [True, True, False]
    assert policy.escalation.return_home_interview.due_within == timedelta(hours=72)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(minutes=90)),
        ("3d", timedelta(days=3)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("bad", ["", "5", "m5", "1x", "-1h", "1h 3"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_malformed_yaml_names_file_and_line(policy_copy: Path) -> None:
    (policy_copy / "escalation.yaml").write_text("tiers:\n  high: [unclosed\n")
    with pytest.raises(ConfigError, match=r"escalation.yaml: line \d+"):
        load_policy(policy_copy)


def test_invalid_ladder_names_field(policy_copy: Path) -> None:
    path = policy_copy / "escalation.yaml"
    path.write_text(path.read_text().replace("after: 30m", "after: soon", 1))
    with pytest.raises(ConfigError, match=r"escalation.yaml: tiers.high.steps.1.after"):
        load_policy(policy_copy)


def test_missing_template_is_reported(policy_copy: Path) -> None:
    (policy_copy / "templates" / "escalation.sms.j2").unlink()
    with pytest.raises(ConfigError, match=r"escalation.sms.j2"):
        load_policy(policy_copy)


def test_template_syntax_error_names_file(policy_copy: Path) -> None:
    (policy_copy / "templates" / "returned.sms.j2").write_text("{{ oops ")
    with pytest.raises(ConfigError, match=r"returned.sms.j2: line 1"):
        load_policy(policy_copy)


def test_rota_unknown_person_is_reported(policy_copy: Path) -> None:
    path = policy_copy / "rota.yaml"
    path.write_text(path.read_text().replace("always: [tm-1]", "always: [tm-404]"))
    with pytest.raises(ConfigError, match=r"tm-404"):
        load_policy(policy_copy)


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISSING_ALERTS_TOPIC_PARTITIONS", "8")
    monkeypatch.setenv("MISSING_ALERTS_KAFKA_BOOTSTRAP", "broker:9092")
    settings = load_settings()
    assert settings.topic_partitions == 8
    assert settings.bootstrap_servers() == "broker:9092"
    assert settings.topic("events") == "missing-alerts.events"


def test_bad_setting_names_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISSING_ALERTS_WEB_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="MISSING_ALERTS_WEB_PORT"):
        load_settings()


def test_partial_twilio_credentials_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISSING_ALERTS_TWILIO_ACCOUNT_SID", "AC123")
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        load_settings()


def test_secrets_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISSING_ALERTS_SMTP_USERNAME", "u")
    monkeypatch.setenv("MISSING_ALERTS_SMTP_PASSWORD", "hunter2-very-secret")
    settings = load_settings()
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


def test_local_broker_bootstrap_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MISSING_ALERTS_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("KAFKA_LOCAL_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="scripts/kafka-local start"):
        load_settings().bootstrap_servers()
    (tmp_path / "bootstrap").write_text("127.0.0.1:40001\n")
    assert load_settings().bootstrap_servers() == "127.0.0.1:40001"


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_bad_policy_stops_with_one_line(policy_copy: Path) -> None:
    (policy_copy / "rota.yaml").write_text("people: [")
    env = {"PATH": "/usr/bin:/bin", "MISSING_ALERTS_POLICY_DIR": str(policy_copy)}
    result = _cli(["check-config"], env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "rota.yaml" in lines[0] and "Traceback" not in result.stderr


def test_cli_bad_setting_stops_with_one_line() -> None:
    env = {"PATH": "/usr/bin:/bin", "MISSING_ALERTS_TOPIC_PARTITIONS": "zero"}
    result = _cli(["worker"], env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "MISSING_ALERTS_TOPIC_PARTITIONS" in result.stderr


def test_cli_check_config_ok() -> None:
    result = _cli(["check-config"], {"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: policy")


PRODUCTION = {
    "MISSING_ALERTS_ENVIRONMENT": "production",
    "MISSING_ALERTS_LINK_SECRET": "l" * 32,
    "MISSING_ALERTS_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "MISSING_ALERTS_TWILIO_AUTH_TOKEN": "token",
    "MISSING_ALERTS_TWILIO_FROM_NUMBER": "+447700900999",
    "MISSING_ALERTS_SMTP_HOST": "smtp.example.org",
}


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"MISSING_ALERTS_LINK_SECRET": "x"}, "LINK_SECRET must be at least 32 bytes"),
        ({"MISSING_ALERTS_TWILIO_ACCOUNT_SID": ""}, "OUTBOX_IN_PRODUCTION"),
        ({"MISSING_ALERTS_SMTP_HOST": ""}, "OUTBOX_IN_PRODUCTION"),
    ],
)
def test_production_fails_closed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, change: dict[str, str], complaint: str
) -> None:
    """Finding 6 of issue #10: production took LINK_SECRET=x and silently wrote messages to
    the outbox file when no Twilio/SMTP credentials were set."""
    keys = tmp_path / "keys.yaml"
    for name, value in {**PRODUCTION, "MISSING_ALERTS_API_KEYS_FILE": str(keys), **change}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=complaint):
        load_settings()


def test_production_may_use_the_outbox_when_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MISSING_ALERTS_API_KEYS_FILE", str(tmp_path / "keys.yaml"))
    assert load_settings().environment == "production"
    monkeypatch.setenv("MISSING_ALERTS_TWILIO_ACCOUNT_SID", "")
    monkeypatch.setenv("MISSING_ALERTS_OUTBOX_IN_PRODUCTION", "true")
    assert load_settings().outbox_in_production


def test_cli_refuses_development_keys_in_production(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        **PRODUCTION,
        "MISSING_ALERTS_API_KEYS_FILE": str(POLICY_DIR / "api_keys.dev.yaml"),
    }
    out = _cli(["check-config"], env)
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and "development keys" in out.stderr


def test_a_police_route_needs_a_police_contact_in_every_authority(policy_copy: Path) -> None:
    """Finding 4 of issue #10: with no profile a child never reached the police at night."""
    rota = policy_copy / "rota.yaml"
    rota.write_text(rota.read_text().replace("    police_contact: police-desk\n", ""))
    with pytest.raises(ConfigError, match=r"LA-EXAMPLE\.police_contact: required"):
        load_policy(policy_copy)
