"""``GET /v1/episodes/{code}/status``: what a carer may see of the episode they reported
(issue 14): open, closed or cancelled, and who acknowledged it and when. Answered by any
worker from the read model (streams/web/episode_index.py), for keys that write events (the
carer) or read episodes, within the key's authorities. Nothing about the child beyond the
code: a carer reading back their own report needs no more, and a leaked carer key then reveals
no more than that an episode exists.

Who acknowledged is shown by the rota's display name ("Duty social worker (day)"), never a
phone number or an email address.
"""

from __future__ import annotations

from typing import Any, Final

import faust

from config.policy import Person
from streams.episodes.views import EpisodeSummary
from streams.web.access import ApiError
from streams.web.api import Api, problem
from streams.web.auth import Scope
from streams.web.episode_index import EpisodeIndex
from streams.worker.wiring import Resources, Wiring

NO_STORE: Final = {"Cache-Control": "no-store"}


def carer_status(summary: EpisodeSummary, people: dict[str, Person]) -> dict[str, Any]:
    """Pure: the status answer from a summary and the rota's people."""
    acknowledged = sorted(summary.acknowledged_by.items(), key=lambda pair: pair[1])
    return {
        "episode_code": summary.episode_code,
        "status": summary.status,
        "reported_at": summary.reported_at.isoformat(),
        "returned_at": summary.returned_at.isoformat() if summary.returned_at else None,
        "cancel_reason": summary.cancel_reason,
        "acknowledged": [
            {"by": people[pid].display_name if pid in people else "duty team", "at": at.isoformat()}
            for pid, at in acknowledged
        ],
    }


def wire_episode_status(w: Wiring, r: Resources, api: Api, index: EpisodeIndex) -> None:

    @w.app.page("/v1/episodes/{code}/status")
    class EpisodeStatus(faust.web.View):  # type: ignore[misc]
        async def get(self, request: Any, code: str) -> Any:
            try:
                key = api.authenticate(request, (Scope.EVENTS_WRITE, Scope.EPISODES_READ))
                summary = index.get(code.upper()) if len(code) <= 12 else None
                if summary is None:
                    # Not (yet) known: the engine writes the summary a moment after the report.
                    raise ApiError(404, "not_found", "no episode with that code (yet)")
                if summary.local_authority not in key.local_authorities:
                    raise ApiError(404, "not_found", "no episode with that code (yet)")
            except ApiError as exc:
                return problem(self, exc)
            # The rota in use now: it can be reloaded while the worker runs (streams/reload.py).
            return self.json(carer_status(summary, r.policy.rota.people), headers=NO_STORE)
