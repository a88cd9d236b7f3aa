"""GET /v1/deliveries/{notification_id}: where one message stands (status only, no content).

Operators use it to answer "did the police liaison get the SMS?"; it shows status, attempts and
the provider's id, never the address or the body.
"""

from __future__ import annotations

from typing import Any

import faust

from alerts.delivery_log import decode
from streams.app import Resources, Wiring


def wire_deliveries(w: Wiring, _r: Resources) -> None:
    @w.app.page("/v1/deliveries/{notification_id}")
    class DeliveryStatusView(faust.web.View):  # type: ignore[misc]
        async def get(self, request: Any, notification_id: str) -> Any:
            raw = w.deliveries.get(notification_id.encode())
            if raw is None:
                return self.json({"error": "unknown notification on this worker"}, status=404)
            d = decode(raw)
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
                }
            )
