"""One apply call's working set: the child's state being changed, and the effects it produces,
every id derived from the input event so a replay yields byte-identical output."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final
from uuid import NAMESPACE_URL, UUID, uuid5

from config.policy import CancelNotice, Notice, Policy
from schemas.alerts import Alert, AlertKind, Channel, RepeatCount
from schemas.common import RiskFlag, authority_of
from schemas.events import InputEvent
from schemas.records import EpisodeRecord, RecordAction
from streams.episodes.risk import Assessment, assess_risk
from streams.episodes.state import ChildState, Effects, Episode

# Fixed namespace: changing it would change every derived id and defeat replay de-duplication.
_ID_NAMESPACE: Final = uuid5(NAMESPACE_URL, "urn:missing-alerts:episode-engine")

Action = RecordAction


class Run:
    """One apply call: the state being changed, and the effects with ids derived from the event."""

    def __init__(self, state: ChildState, event: InputEvent, now: datetime, policy: Policy):
        self.state = state
        self.event = event
        self.now = now
        self.policy = policy
        self.effects = Effects()

    def derived_id(self, discriminator: str) -> UUID:
        return uuid5(_ID_NAMESPACE, f"{self.event.event_id}|{discriminator}")

    def record(
        self, code: str, action: Action, *, id_key: str | None = None, **detail: Any
    ) -> None:
        index = len(self.effects.records)
        self.effects.records.append(
            EpisodeRecord(
                event_id=self.derived_id(id_key or f"record:{index}:{action}"),
                occurred_at=self.now,
                child_ref=self.event.child_ref,
                episode_code=code,
                action=action,
                detail={"event_type": self.event.type, **detail},
            )
        )

    def assess(
        self, flags: frozenset[RiskFlag], immediate_danger: bool, last_seen_at: datetime
    ) -> Assessment:
        return assess_risk(
            self.policy.risk,
            profile=self.state.profile,
            reported_flags=flags,
            immediate_danger=immediate_danger,
            last_seen_at=last_seen_at,
            previous_episode_starts=[e.last_seen_at for e in self.state.recent_episodes],
        )

    def ignore(self, code: str, reason: str, **detail: Any) -> None:
        self.record(code, "ignored", reason=reason, **detail)

    def alert(
        self,
        episode: Episode,
        *,
        step_id: str,
        kind: AlertKind,
        roles: tuple[str, ...],
        channels: tuple[Channel, ...],
        template: str,
        due_at: datetime | None = None,
        once: bool = True,
        repeat: RepeatCount | None = None,
    ) -> bool:
        """Emit one alert; ``once`` ids are remembered so they can never be sent twice."""
        if once and step_id in episode.fired:
            return False
        alert = self._build_alert(episode, step_id, kind, roles, channels, template, repeat)
        self.effects.alerts.append(alert)
        if once:
            episode.fired[step_id] = self.now
        episode.notified_roles.extend(r for r in unique(roles) if r not in episode.notified_roles)
        self.record(
            episode.code,
            "step_fired",
            step_id=step_id,
            alert_id=alert.alert_id,
            kind=kind.value,
            tier=episode.tier.value,
            roles=list(roles),
            channels=[c.value for c in channels],
            due_at=iso(due_at),
        )
        return True

    def tell_everyone_told(
        self, episode: Episode, step_id: str, kind: AlertKind, notice: Notice | CancelNotice
    ) -> None:
        """One notice to every role told of the episode so far (its return, its cancellation);
        when nobody was told, nobody is."""
        if episode.notified_roles:
            self.alert(
                episode,
                step_id=step_id,
                kind=kind,
                roles=tuple(episode.notified_roles),
                channels=notice.channels,
                template=notice.template,
            )

    def _build_alert(
        self,
        episode: Episode,
        step_id: str,
        kind: AlertKind,
        roles: tuple[str, ...],
        channels: tuple[Channel, ...],
        template: str,
        repeat: RepeatCount | None = None,
    ) -> Alert:
        profile = self.state.profile
        alert_id = f"{episode.code}:{step_id}"
        returned_at = episode.returned_at
        rhi_within = self.policy.escalation.return_home_interview.due_within
        return Alert(
            event_id=self.derived_id(f"alert:{alert_id}"),
            occurred_at=self.now,
            child_ref=self.state.child_ref,
            alert_id=alert_id,
            kind=kind,
            episode_code=episode.code,
            step_id=step_id,
            tier=episode.tier,
            category=episode.category,
            roles=roles,
            channels=channels,
            template=template,
            # With no profile yet, the authority the reference names: the child's own duty
            # team is told, not the default authority's.
            local_authority=(
                profile.local_authority
                if profile
                else authority_of(self.state.child_ref, self.policy.rota.default_local_authority)
            ),
            police_force=profile.police_force if profile else None,
            initials=profile.initials if profile else None,
            last_seen_at=episode.last_seen_at,
            reported_at=episode.reported_at,
            profile_missing=profile is None,
            returned_at=returned_at,
            rhi_due_at=returned_at + rhi_within if returned_at else None,
            repeat=repeat,
            cancel_reason=episode.cancel_reason,
        )


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
