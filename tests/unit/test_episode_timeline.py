"""The episode timeline of GET /v1/episodes/{code} (streams/web/episode_timeline.py): every
report, step, acknowledgement and the return, in the order they happened, even when they
arrived out of order; nothing personal."""

from __future__ import annotations

import json

from schemas.common import Category, RiskFlag
from streams.web.episode_timeline import timeline
from streams.web.episode_view import episode_view
from tests.unit.episode_helpers import (
    T0,
    Driver,
    absence,
    ack,
    hours,
    minutes,
    profile,
    returned,
    update,
)


def test_the_timeline_tells_the_episode_in_the_order_it_happened() -> None:
    driver = Driver()
    driver.send(profile(T0 - hours(24)), T0)
    driver.send(absence(T0 - minutes(10), T0), T0)
    code = driver.code
    driver.send(update(T0 + minutes(5), "risk", code=code, flags=[RiskFlag.CSE]), T0 + minutes(5))
    driver.send(ack(T0 + minutes(7), code, "sw-1"), T0 + minutes(7))
    driver.tick(T0 + hours(3))
    driver.send(returned(T0 + hours(4)), T0 + hours(4))
    assert driver.state is not None
    episode = driver.state.closed_episode(code)
    assert episode is not None
    entries = timeline(episode)
    whats = [e["what"] for e in entries]
    assert whats[:3] == ["last_seen", "reported", "step_fired"], whats
    assert whats[-1] == "returned" and "acknowledged" in whats and "updated" in whats
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    (raised,) = [e for e in entries if e["what"] == "updated"]
    assert raised["flags"] == [RiskFlag.CSE.value]
    view = episode_view(driver.state, episode)
    assert view["timeline"] == entries
    text = json.dumps(view)
    for private in ("Jane", "Secret", "asthma", "red coat", "station"):
        assert private not in text


def test_a_late_update_takes_its_place_by_when_it_happened() -> None:
    driver = Driver()
    driver.send(profile(T0 - hours(24)), T0)
    driver.send(absence(T0, T0), T0)
    code = driver.code
    driver.send(returned(T0 + hours(2)), T0 + hours(2))
    # Sighted an hour in, reported after the return: amends the closed episode.
    late = update(T0 + hours(1), "category", code=code, category=Category.AWAY)
    driver.send(late, T0 + hours(3))
    assert driver.state is not None
    episode = driver.state.closed_episode(code)
    assert episode is not None
    whats = [e["what"] for e in timeline(episode)]
    assert whats.index("updated") < whats.index("returned"), whats
