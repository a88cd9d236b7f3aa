"""Cancelling a false report (issue 14): the duty team learns the child was never missing (or
the report repeated another, or named the wrong child) and withdraws it.

The episode leaves every rule: it moves from the open (or recent closed) episodes to
``ChildState.cancelled_episodes``, which no ladder, interview timer, repeat count, risk rule or
event-time query reads, so it stops escalating at once, never counts as a previous episode and
leaves no SSDA903 period (the export drops a ``cancelled`` record's period). Everyone already
told hears it was withdrawn (the policy's ``cancel_notice``); a report nobody was told of yet is
cancelled silently. Later events naming it are ignored as ``episode_cancelled``. Pure, like the
rest of the machine: docs/episode-engine.md, "Cancelling a false report".
"""

from __future__ import annotations

from schemas.alerts import AlertKind
from schemas.events import InputEvent, ReportCancelled
from streams.episodes.run import Run
from streams.episodes.state import ChildState, Episode

CANCELLED_STEP_ID = "cancelled"


def cancel(run: Run, event: ReportCancelled) -> None:
    state, code = run.state, event.episode_code
    episode, was_open = _withdrawn(state, code)
    if episode is None:
        run.ignore(code, "unknown_episode")
        return
    episode.cancelled_at, episode.cancel_reason = event.occurred_at, event.reason
    episode.closed_at = episode.closed_at or run.now
    episode.renotify = None
    state.cancelled_episodes.append(episode)
    run.record(
        code,
        "cancelled",
        reason=event.reason,
        was_open=was_open,
        reporter_role=event.reporter.role,
        api_key_id=event.api_key_id,
        told_roles=list(episode.notified_roles),
    )
    run.tell_everyone_told(
        episode, CANCELLED_STEP_ID, AlertKind.CANCELLED, run.policy.escalation.cancel_notice
    )


def _withdrawn(state: ChildState, code: str) -> tuple[Episode | None, bool]:
    """Take the episode out of the open slot or the recent ones; (None, False) if neither."""
    if state.open_episode is not None and state.open_episode.code == code:
        episode, state.open_episode = state.open_episode, None
        return episode, True
    closed = state.closed_episode(code)
    if closed is not None:
        state.recent_episodes.remove(closed)
    return closed, False


def refuses(run: Run, event: InputEvent, named: str | None) -> bool:
    """An event naming a cancelled episode changes nothing: recorded, and True."""
    if named is None or run.state.cancelled_episode(named) is None:
        return False
    kind = "already_cancelled" if isinstance(event, ReportCancelled) else "episode_cancelled"
    run.ignore(named, kind)
    return True
