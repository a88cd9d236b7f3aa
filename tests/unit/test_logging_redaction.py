from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime

import pytest
import structlog

from schemas import ChildProfile
from telemetry.logging import REDACTED, configure_logging, get_logger


def test_whole_models_and_secrets_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    structlog.reset_defaults()
    configure_logging("json", "INFO")
    profile = ChildProfile(
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        child_ref="C1",
        initials="JD",
        date_of_birth=date(2012, 1, 1),
        local_authority="LA",
        full_name="Jane Doe",
        address="1 Secret Street",
        medical_notes="insulin",
    )
    log = get_logger("test")
    log.info("profile seen", profile=profile, episode_code="ABC123", twilio_auth_token="tok-xyz")
    logging.getLogger("faust.x").warning("stdlib line with %s", "args")
    err = capsys.readouterr().err
    assert "Jane Doe" not in err and "Secret Street" not in err and "insulin" not in err
    assert "tok-xyz" not in err
    first = json.loads(err.splitlines()[0])
    assert first["profile"]["full_name"] == REDACTED
    assert first["profile"]["child_ref"] == "C1" and first["episode_code"] == "ABC123"
    assert json.loads(err.splitlines()[1])["event"] == "stdlib line with args"
