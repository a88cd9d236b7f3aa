"""What the API shows of an episode: state for responders, never the child's personal data."""

from __future__ import annotations

from typing import Any

from streams.episodes.state import ChildState, Episode, status_of
from streams.web.episode_timeline import timeline


def find_episode(state: ChildState, code: str) -> Episode | None:
    if state.open_episode is not None and state.open_episode.code == code:
        return state.open_episode
    return state.closed_episode(code) or state.cancelled_episode(code)


def episode_view(state: ChildState, episode: Episode) -> dict[str, Any]:
    profile = state.profile
    return {
        "episode_code": episode.code,
        "child_ref": state.child_ref,
        "initials": profile.initials if profile else None,
        "local_authority": profile.local_authority if profile else None,
        "status": status_of(episode),
        "cancel_reason": episode.cancel_reason,
        "category": episode.category.value,
        "tier": episode.tier.value,
        "profile_missing": episode.profile_missing,
        "last_seen_at": episode.last_seen_at.isoformat(),
        "reported_at": episode.reported_at.isoformat(),
        "returned_at": episode.returned_at.isoformat() if episode.returned_at else None,
        "steps_fired": {k: v.isoformat() for k, v in sorted(episode.fired.items())},
        "acknowledged_by": {k: v.isoformat() for k, v in episode.acknowledged_by.items()},
        "timeline": timeline(episode),
        "return_interview": {
            "offered_on": episode.rhi_offered_on.isoformat() if episode.rhi_offered_on else None,
            "accepted": episode.rhi_accepted,
        },
    }
