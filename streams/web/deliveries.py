"""GET /v1/deliveries/{notification_id}: where one message stands (status only, no content).

Operators use it to answer "did the police liaison get the SMS?"; it shows status, attempts and
the provider's id, never the address or the body. Notification ids are predictable (episode,
step, person, channel), so the route needs a key with the ``deliveries:read`` scope, and only
for children of the key's own authorities.
"""

from __future__ import annotations

from typing import Any

import faust

from alerts.delivery_log import decode
from streams.web.access import ApiError
from streams.web.api import Api, problem
from streams.web.auth import Scope
from streams.worker.wiring import Resources, Wiring
from telemetry.logging import episode_code_of


def wire_deliveries(w: Wiring, _r: Resources, api: Api) -> None:
    @w.app.page("/v1/deliveries/{notification_id}")
    class DeliveryStatusView(faust.web.View):  # type: ignore[misc]
        async def get(self, request: Any, notification_id: str) -> Any:
            try:
                key = api.authenticate(request, Scope.DELIVERIES_READ)
                # The authority check comes first and goes by the episode the id names, so the
                # route tells nobody outside the authority whether a message exists.
                code = episode_code_of(notification_id)
                if code is None:
                    raise ApiError(404, "not_found", "no such notification")
                api.check_child(key, api.child_for_code(code))
                raw = w.deliveries.get(notification_id.encode())
                if raw is None:
                    raise ApiError(404, "not_found", "unknown notification on this worker")
                d = decode(raw)
            except ApiError as exc:
                return problem(self, exc)
            return self.json(
                {
                    "notification_id": notification_id,
                    "channel": d.notification.channel.value,
                    "recipient_id": d.notification.recipient_id,
                    "status": d.status,
                    "attempts": d.attempts,
                    "provider_message_id": d.provider_message_id,
                    "last_error": d.last_error,
                    "fallback_sent": d.fallback_done,
                    "updated_at": d.updated_at.isoformat(),
                },
                headers={"Cache-Control": "no-store"},
            )
