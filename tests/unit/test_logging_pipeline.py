"""One log pipeline for our lines and the libraries' (Faust, mode, aiokafka, twilio): JSON in
production, console in development, episode lines tagged, contact details never written."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from config import load_policy
from config.settings import POLICY_DIR, Settings
from schemas.common import RiskFlag
from streams.engine.batch import process_batch
from telemetry.logging import (
    configure_logging,
    episode_code_of,
    get_logger,
    log_engine_effects,
    mask_contacts,
)
from tests.support import events as ev
from tests.unit.test_metrics import _record


def _json_lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _fresh_structlog() -> None:
    structlog.reset_defaults()


def test_library_loggers_share_the_json_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    for name in ("faust.worker", "mode.services", "aiokafka.consumer.group_coordinator"):
        logging.getLogger(name).warning("library line from %s", name)
    lines = _json_lines(capsys.readouterr().err)
    assert [line["logger"] for line in lines] == [
        "faust.worker",
        "mode.services",
        "aiokafka.consumer.group_coordinator",
    ]
    assert all(line["level"] == "warning" and "timestamp" in line for line in lines)


def test_twilio_request_logs_are_silenced_and_numbers_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "DEBUG")
    http = logging.getLogger("twilio.http_client")
    http.info("POST Request: https://api.twilio.com/Messages.json")
    http.info("Query Params: {'To': '+447700900123', 'Body': 'C1 missing'}")
    http.warning("retrying request for +44 7700 900123 / duty@example.org")
    lines = _json_lines(capsys.readouterr().err)
    assert len(lines) == 1  # the INFO request lines are gone, even at DEBUG
    text = json.dumps(lines)
    assert "7700" not in text and "duty@example.org" not in text
    assert "[phone]" in str(lines[0]["event"]) and "[email]" in str(lines[0]["event"])


def test_mask_contacts() -> None:
    assert mask_contacts("to +447700900123 now") == "to [phone] now"
    assert mask_contacts("a.b+c@example.org") == "[email]"
    assert mask_contacts("step high-t30m+r2 at 2026-11-28") == "step high-t30m+r2 at 2026-11-28"


def test_console_format_in_development(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("console", "INFO")
    get_logger("test.console").info("hello", episode_code="ABC123")
    err = capsys.readouterr().err
    assert "hello" in err and "episode_code=ABC123" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])


def test_production_logs_json_unless_told_otherwise() -> None:
    prod = {
        "environment": "production",
        "link_secret": "s" * 32,
        "api_keys_file": "k.yaml",
        "outbox_in_production": True,
    }
    assert Settings(**prod).log_format == "json"  # type: ignore[arg-type]
    assert Settings(**prod, log_format="console").log_format == "console"  # type: ignore[arg-type]
    assert Settings(environment="development").log_format == "console"


def test_engine_lines_carry_episode_code_and_child_ref_and_nothing_personal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "DEBUG")
    secret = "Jane Example-Private"
    profile = ev.profile("L1", full_name=secret)
    result = process_batch(
        [_record(profile), _record(ev.absence("L1", flags=frozenset({RiskFlag.CSE})))],
        read=lambda _k: None,
        policy=load_policy(POLICY_DIR),
        now=lambda: datetime.now(UTC),
        skew_tolerance=timedelta(minutes=5),
    )
    log_engine_effects(get_logger("test.engine"), result.alerts, result.records)
    err = capsys.readouterr().err
    lines = _json_lines(err)
    assert {line["event"] for line in lines} >= {"episode opened", "alert decided"}
    code = result.alerts[0][1].episode_code
    assert all(line["episode_code"] == code and line["child_ref"] == "L1" for line in lines)
    assert secret not in err


def test_episode_code_of_notification_ids() -> None:
    assert episode_code_of("K7Q2MD:high-t0:pl-1:sms") == "K7Q2MD"
    assert episode_code_of("garbage") is None
